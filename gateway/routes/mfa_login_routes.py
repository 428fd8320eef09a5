"""/v1/auth/login/mfa (the second step of a login) and /v1/auth/reauthenticate (step-up)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from deelrx.identity.v1 import identity_pb2
from deelrx.sessions.v1 import sessions_pb2
from gateway.auth import IssuedTokens, authenticate, limit_anonymous, queue_cookies
from gateway.clients import call
from gateway.context import request_context
from gateway.exchange import exchange_of
from gateway.presenters import session_json
from gateway.routes.auth_routes import PROBLEMS, start_session
from gateway.schemas import LoginOut
from gateway.security_schemas import MfaLoginBody, ReauthenticateBody
from gateway.state import gateway_of

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/login/mfa", response_model=LoginOut, response_model_exclude_none=True, responses=PROBLEMS)
async def login_mfa(body: MfaLoginBody, request: Request) -> dict[str, Any]:
    await limit_anonymous(request)
    gw = gateway_of(request)
    verify = identity_pb2.VerifyMfaRequest(context=request_context(request), mfa_token=body.mfa_token)
    if body.recovery_code is not None:
        verify.recovery_code = body.recovery_code
    else:
        verify.code = body.code or ""
    result = await call(gw.clients.identity.VerifyMfa, verify)
    exchange_of(request).forbid_caching()
    # Delivered as the password step asked (kept with the mfa_token by identity).
    delivery = "body" if result.token_delivery == "body" else "cookie"
    return await start_session(gw, request, result.user, list(result.amr), result, delivery)


@router.post("/reauthenticate", responses=PROBLEMS)
async def reauthenticate(body: ReauthenticateBody, request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    gw = gateway_of(request)
    ctx = request_context(request)
    proof = await call(
        gw.clients.identity.Reauthenticate,
        identity_pb2.ReauthenticateRequest(
            context=ctx, user_id=auth.user_id, password=body.password, code=body.code or ""
        ),
    )
    renewed = await call(
        gw.clients.sessions.MarkReauthenticated,
        sessions_pb2.MarkReauthenticatedRequest(
            context=ctx, session_id=auth.session_id, amr=list(proof.amr), auth_time=proof.auth_time
        ),
    )
    exchange_of(request).forbid_caching()
    tokens = IssuedTokens(
        renewed.tokens.access_token, renewed.tokens.refresh_token, renewed.tokens.expires_in, renewed.session
    )
    if auth.via == "bearer":
        return {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
            "session": session_json(renewed.session),
        }
    queue_cookies(request, tokens)
    return {"session": session_json(renewed.session), "expires_in": tokens.expires_in}
