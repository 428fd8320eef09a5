"""/v1/auth: sign-up, email verification, login, refresh, logout, me."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request, Response

from deelrx.identity.v1 import identity_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.errors import DomainError
from gateway import change_revisions, csrf, device_cookie
from gateway.auth import ENROLLMENT_SCOPE, IssuedTokens, apply_decision, authenticate, limit_anonymous, queue_cookies
from gateway.clients import call
from gateway.context import request_context
from gateway.early_limits import limit_refresh
from gateway.exchange import exchange_of
from gateway.presenters import session_json, user_json
from gateway.profile_cache import Caller
from gateway.schemas import (
    EmailBody,
    EmailVerified,
    LoginBody,
    LoginOut,
    MeOut,
    RefreshBody,
    SignupAccepted,
    SignupBody,
    VerifyEmailBody,
)
from gateway.state import Gateway, gateway_of

log = structlog.get_logger("deelrx.gateway")

router = APIRouter(prefix="/v1/auth", tags=["auth"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"content": {"application/problem+json": {}}, "description": desc}
    for code, desc in {
        400: "malformed_request",
        401: "unauthenticated / invalid_credentials / session_expired",
        403: "csrf_failed / email_not_verified",
        413: "payload_too_large",
        415: "unsupported_media_type",
        422: "validation_error",
        429: "rate_limited / account_locked",
        503: "unavailable",
    }.items()
}


@router.post("/signup", status_code=201, response_model=SignupAccepted, responses=PROBLEMS)
async def signup(body: SignupBody, request: Request) -> dict[str, str]:
    await limit_anonymous(request, body.email)
    gw = gateway_of(request)
    await call(
        gw.clients.identity.StartSignup,
        identity_pb2.StartSignupRequest(
            context=request_context(request), email=body.email, password=body.password, name=body.name
        ),
    )
    return {"status": "verification_sent"}


@router.post("/verify-email", response_model=EmailVerified, responses=PROBLEMS)
async def verify_email(body: VerifyEmailBody, request: Request) -> dict[str, bool]:
    await limit_anonymous(request)
    gw = gateway_of(request)
    await call(
        gw.clients.identity.VerifyEmail,
        identity_pb2.VerifyEmailRequest(
            context=request_context(request), token=body.token, password=body.password or ""
        ),
    )
    return {"email_verified": True}


@router.post(
    "/verify-email/resend",
    status_code=202,
    response_class=Response,
    responses={202: {"description": "Accepted, always; a link is mailed only to a pending sign-up"}, **PROBLEMS},
)
async def resend_verification(body: EmailBody, request: Request) -> Response:
    await limit_anonymous(request, body.email)
    gw = gateway_of(request)
    await call(
        gw.clients.identity.ResendVerification,
        identity_pb2.ResendVerificationRequest(context=request_context(request), email=body.email),
    )
    return Response(status_code=202)


@router.post("/login", response_model=LoginOut, response_model_exclude_none=True, responses=PROBLEMS)
async def login(body: LoginBody, request: Request) -> dict[str, Any]:
    gw = gateway_of(request)
    # A device that signed in to this account before skips the per-account limit, which
    # anyone could otherwise keep exhausted to hold the owner at 429.
    trusted = device_cookie.is_trusted_for(gw, request, body.email)
    await limit_anonymous(request, None if trusted else body.email)
    result = await call(
        gw.clients.identity.Authenticate,
        identity_pb2.AuthenticateRequest(
            context=request_context(request),
            email=body.email,
            password=body.password,
            token_delivery=body.token_delivery,
            device_token=device_cookie.presented(gw, request),
        ),
    )
    exchange_of(request).forbid_caching()
    if result.mfa_required:
        # The second step delivers as this one was asked to (kept with the mfa_token by identity).
        return {"mfa_required": True, "mfa_token": result.mfa_token}
    return await start_session(gw, request, result.user, list(result.amr), result, body.token_delivery)


async def start_session(
    gw: Gateway,
    request: Request,
    user: identity_pb2.User,
    amr: list[str],
    result: identity_pb2.AuthenticateResponse | identity_pb2.VerifyMfaResponse,
    delivery: str,
) -> dict[str, Any]:
    """Create the session after a complete login and deliver its tokens. Its scope and
    timeouts are identity's decision (`session_grant`), passed on as they are."""
    grant = result.session_grant
    created = await call(
        gw.clients.sessions.CreateSession,
        sessions_pb2.CreateSessionRequest(
            context=request_context(request),
            user_id=user.id,
            team_id=result.active_team.id if result.HasField("active_team") else "",
            amr=amr,
            auth_time=result.auth_time,
            scope=grant.scope,
            policy=sessions_pb2.SessionPolicy(
                idle_timeout_minutes=grant.idle_timeout_minutes,
                absolute_timeout_hours=grant.absolute_timeout_hours,
            ),
        ),
    )
    if created.new_device:
        await _notify_new_device(gw, request, user.id, created.session.device.label)
    answer: dict[str, Any] = {
        "user": user_json(user),
        "session": session_json(created.session),
        "mfa_required": False,
    }
    if grant.scope == ENROLLMENT_SCOPE:
        answer["mfa_enrollment_required"] = True
    tokens = IssuedTokens(
        created.tokens.access_token, created.tokens.refresh_token, created.tokens.expires_in, created.session
    )
    if delivery == "body":
        answer.update(_token_body(tokens))
    else:
        queue_cookies(request, tokens)
        device_cookie.remember(request, result.device_token)
    return answer


async def _notify_new_device(gw: Gateway, request: Request, user_id: str, label: str) -> None:
    """Best effort: a mail about a new device must not fail the login it reports."""
    try:
        await call(
            gw.clients.identity.NotifyNewDevice,
            identity_pb2.NotifyNewDeviceRequest(context=request_context(request), user_id=user_id, device_label=label),
        )
    except DomainError as exc:
        log.warning("new_device_notice_failed", user_id=user_id, code=exc.code)


def _token_body(tokens: IssuedTokens) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
    }


@router.post("/refresh", responses=PROBLEMS)
async def refresh(request: Request, body: RefreshBody | None = None) -> dict[str, Any]:
    gw = gateway_of(request)
    names = gw.cookies.names
    proof = csrf.CookieCsrf(request.headers.get("x-csrf-token"), request.cookies.get(names.csrf))
    exchange_of(request).forbid_caching()
    # The refresh budget, before sessions' Refresh (usually counted by the pipeline already).
    apply_decision(request, await limit_refresh(gw, request))
    if body is not None and body.refresh_token:
        token, by_cookie = body.refresh_token, False
    elif "authorization" in request.headers:
        # An API client: cookies are ignored whenever an Authorization header is present.
        await limit_anonymous(request)
        raise DomainError("unauthenticated", "Send the refresh token in the body")
    else:
        token, by_cookie = request.cookies.get(names.refresh, ""), True
        if not token:
            raise DomainError("unauthenticated", "No refresh token")
        proof.check_echoed()
    try:
        renewed = await call(
            gw.clients.sessions.Refresh,
            sessions_pb2.RefreshRequest(context=request_context(request), refresh_token=token),
        )
    except DomainError as exc:
        if by_cookie and exc.code in ("unauthenticated", "session_expired"):
            exchange_of(request).drop_cookies()
        raise
    tokens = IssuedTokens(
        renewed.tokens.access_token, renewed.tokens.refresh_token, renewed.tokens.expires_in, renewed.session
    )
    if not by_cookie:
        return {**_token_body(tokens), "session": session_json(renewed.session)}
    # Delivered even if the check below fails: the old refresh token is rotated already,
    # and the new csrf cookie is bound to this session, replacing whatever was planted.
    queue_cookies(request, tokens)
    proof.check_bound(gw.secret, renewed.session.id)
    return {"session": session_json(renewed.session), "expires_in": tokens.expires_in}


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Session revoked, cookies cleared"}, **PROBLEMS},
)
async def logout(request: Request) -> Response:
    ctx = await authenticate(request)
    gw = gateway_of(request)
    await call(
        gw.clients.sessions.RevokeSession,
        sessions_pb2.RevokeSessionRequest(
            context=request_context(request), session_id=ctx.session_id, user_id=ctx.user_id, reason="logout"
        ),
    )
    gw.revocations.add([ctx.session_id])
    # A Bearer logout ends the Bearer session only: cookies are ignored when an Authorization
    # header is present, so they are not cleared either (they may belong to another session).
    exchange_of(request).end_cookie_session(clear=ctx.via == "cookie")
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, responses=PROBLEMS)
async def me(request: Request) -> dict[str, Any]:
    ctx = await authenticate(request, watch=change_revisions.keys_for)
    # Answered from the gateway's caches while nothing changed (gateway/profile_cache.py).
    caller = Caller(ctx.user_id, ctx.session_id, ctx.team_id, ctx.claims.iat, ctx.revisions)
    return await gateway_of(request).profiles.me(caller)
