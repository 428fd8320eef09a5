"""/v1/auth/password: forgot, reset, change."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from deelrx.identity.v1 import identity_pb2
from deelrx.sessions.v1 import sessions_pb2
from gateway.auth import authenticate, limit_anonymous
from gateway.clients import call
from gateway.context import request_context
from gateway.exchange import exchange_of
from gateway.routes.auth_routes import PROBLEMS
from gateway.security_schemas import ChangePasswordBody, ForgotBody, ResetBody
from gateway.state import gateway_of
from gateway.stepup import require_step_up

router = APIRouter(prefix="/v1/auth/password", tags=["password"])


@router.post(
    "/forgot",
    status_code=202,
    response_class=Response,
    responses={202: {"description": "Accepted, always; a link is mailed only to an account"}, **PROBLEMS},
)
async def forgot(body: ForgotBody, request: Request) -> Response:
    await limit_anonymous(request, body.email)
    gw = gateway_of(request)
    await call(
        gw.clients.identity.RequestPasswordReset,
        identity_pb2.RequestPasswordResetRequest(context=request_context(request), email=body.email),
    )
    return Response(status_code=202)


@router.post(
    "/reset",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Password set; every session of the user revoked"}, **PROBLEMS},
)
async def reset(body: ResetBody, request: Request) -> Response:
    await limit_anonymous(request)
    gw = gateway_of(request)
    ctx = request_context(request)
    done = await call(
        gw.clients.identity.ResetPassword,
        identity_pb2.ResetPasswordRequest(context=ctx, token=body.token, new_password=body.new_password),
    )
    await call(
        gw.clients.sessions.RevokeSessions,
        sessions_pb2.RevokeSessionsRequest(context=ctx, user_id=done.user_id, reason="password_reset"),
    )
    exchange_of(request).forbid_caching()
    return Response(status_code=204)


@router.post(
    "/change",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Password changed; the other sessions revoked"}, **PROBLEMS},
)
async def change(body: ChangePasswordBody, request: Request) -> Response:
    auth = await authenticate(request)
    await require_step_up(request, auth)
    gw = gateway_of(request)
    ctx = request_context(request)
    await call(
        gw.clients.identity.ChangePassword,
        identity_pb2.ChangePasswordRequest(
            context=ctx,
            user_id=auth.user_id,
            current_password=body.current_password,
            new_password=body.new_password,
        ),
    )
    await call(
        gw.clients.sessions.RevokeSessions,
        sessions_pb2.RevokeSessionsRequest(
            context=ctx, user_id=auth.user_id, except_session_id=auth.session_id, reason="password_changed"
        ),
    )
    return Response(status_code=204)
