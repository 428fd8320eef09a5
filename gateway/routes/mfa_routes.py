"""/v1/mfa: TOTP enrollment and removal, recovery codes. Reachable by enrollment-only sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from deelrx.identity.v1 import identity_pb2
from deelrx.sessions.v1 import sessions_pb2
from gateway.auth import authenticate
from gateway.clients import call
from gateway.context import request_context
from gateway.exchange import exchange_of
from gateway.routes.auth_routes import PROBLEMS
from gateway.security_schemas import CodeBody, DisableTotpBody, MfaStatusOut, RecoveryCodesOut, TotpEnrollmentOut
from gateway.state import gateway_of
from gateway.stepup import require_step_up

router = APIRouter(prefix="/v1/mfa", tags=["mfa"])


@router.get("", response_model=MfaStatusOut, responses=PROBLEMS)
async def status(request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    gw = gateway_of(request)
    reply = await call(gw.clients.identity.GetMfaStatus, identity_pb2.GetMfaStatusRequest(user_id=auth.user_id))
    return {"totp_enabled": reply.totp_enabled, "recovery_codes_remaining": reply.recovery_codes_remaining}


@router.post("/totp/enroll", response_model=TotpEnrollmentOut, responses=PROBLEMS)
async def enroll(request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    await require_step_up(request, auth)
    gw = gateway_of(request)
    reply = await call(
        gw.clients.identity.EnrollTotp,
        identity_pb2.EnrollTotpRequest(context=request_context(request), user_id=auth.user_id),
    )
    exchange_of(request).forbid_caching()
    return {"secret": reply.secret, "otpauth_uri": reply.otpauth_uri, "qr_svg": reply.qr_svg}


@router.post("/totp/confirm", response_model=RecoveryCodesOut, responses=PROBLEMS)
async def confirm(body: CodeBody, request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    gw = gateway_of(request)
    ctx = request_context(request)
    reply = await call(
        gw.clients.identity.ConfirmTotp,
        identity_pb2.ConfirmTotpRequest(context=ctx, user_id=auth.user_id, code=body.code),
    )
    exchange_of(request).forbid_caching()
    # Enrollment-only sessions of this user become full sessions at their next refresh.
    await call(
        gw.clients.sessions.EndEnrollmentScope,
        sessions_pb2.EndEnrollmentScopeRequest(context=ctx, user_id=auth.user_id),
    )
    return {"recovery_codes": list(reply.recovery_codes)}


@router.delete(
    "/totp",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "TOTP and the recovery codes removed"}, **PROBLEMS},
)
async def disable(body: DisableTotpBody, request: Request) -> Response:
    auth = await authenticate(request)
    await require_step_up(request, auth)
    gw = gateway_of(request)
    await call(
        gw.clients.identity.DisableTotp,
        identity_pb2.DisableTotpRequest(
            context=request_context(request), user_id=auth.user_id, password=body.password, code=body.code
        ),
    )
    return Response(status_code=204)


@router.post("/recovery-codes", response_model=RecoveryCodesOut, responses=PROBLEMS)
async def regenerate(body: CodeBody, request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    await require_step_up(request, auth)
    gw = gateway_of(request)
    reply = await call(
        gw.clients.identity.RegenerateRecoveryCodes,
        identity_pb2.RegenerateRecoveryCodesRequest(
            context=request_context(request), user_id=auth.user_id, code=body.code
        ),
    )
    exchange_of(request).forbid_caching()
    return {"recovery_codes": list(reply.recovery_codes)}
