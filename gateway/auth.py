"""Authentication of requests: Bearer or cookies, revocation, automatic renewal, CSRF
token binding, the enrollment-only scope and the per-team rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import jwt
from fastapi import Request

from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import redis_keys
from deelrx_kit.errors import DomainError
from deelrx_kit.plans import DEFAULT_PLAN, limit_of
from gateway import csrf
from gateway.clients import call
from gateway.context import request_context
from gateway.early_limits import limit_anonymous_ip, limit_refresh
from gateway.exchange import exchange_of
from gateway.limit_keys import account_key
from gateway.ratelimit import Decision
from gateway.state import Gateway, gateway_of
from gateway.tokens import AccessClaims, InvalidToken

ENROLLMENT_SCOPE = "mfa_enrollment"
# What an enrollment-only session may use (docs/api.md): exact route templates, so a future route
# that merely shares a prefix (say /v1/mfa-admin or /v1/auth/members) is not let in.
ENROLLMENT_ROUTES = frozenset(
    {
        ("GET", "/v1/mfa"),
        ("POST", "/v1/mfa/totp/enroll"),
        ("POST", "/v1/mfa/totp/confirm"),
        ("DELETE", "/v1/mfa/totp"),
        ("POST", "/v1/mfa/recovery-codes"),
        ("GET", "/v1/auth/me"),
        ("POST", "/v1/auth/logout"),
    }
)


def route_template(request: Request) -> str | None:
    """The matched route's path template (`/v1/teams/{tid}`), or None outside a route."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def enrollment_allows(method: str, template: str | None) -> bool:
    method = "GET" if method == "HEAD" else method
    return template is not None and (method, template) in ENROLLMENT_ROUTES


@dataclass(frozen=True)
class AuthContext:
    claims: AccessClaims
    via: Literal["bearer", "cookie"]
    # The caller's change revisions, read with the rate limit (gateway/change_revisions.py).
    revisions: tuple[str, ...] | None = None

    @property
    def user_id(self) -> str:
        return self.claims.user_id

    @property
    def session_id(self) -> str:
        return self.claims.session_id

    @property
    def team_id(self) -> str | None:
        return self.claims.team_id


@dataclass(frozen=True)
class IssuedTokens:
    """Tokens minted for this request, to deliver as cookies or in the body."""

    access_token: str
    refresh_token: str
    expires_in: int
    session: sessions_pb2.Session


def _bearer(request: Request) -> str | None:
    values = request.headers.getlist("authorization")
    if not values:
        return None
    if len(values) > 1:
        raise DomainError("unauthenticated", "Send one Authorization header")
    header = values[0]
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise DomainError("unauthenticated", "Authorization must be a Bearer token")
    return token.strip()


def queue_cookies(request: Request, tokens: IssuedTokens) -> None:
    """Queue the session, refresh and csrf cookies onto this request's response."""
    exchange_of(request).deliver_cookies(tokens)


def absolute_max_age(session: sessions_pb2.Session) -> int:
    return max(int(session.expires_at.ToSeconds() - time.time()), 0)


async def _renew(gw: Gateway, request: Request, refresh_token: str) -> AccessClaims:
    response = await call(
        gw.clients.sessions.Refresh,
        sessions_pb2.RefreshRequest(context=request_context(request), refresh_token=refresh_token),
    )
    tokens = IssuedTokens(
        response.tokens.access_token, response.tokens.refresh_token, response.tokens.expires_in, response.session
    )
    queue_cookies(request, tokens)
    # Minted by the sessions service over the internal channel a moment ago: read the claims
    # rather than verify them, so a JWKS refresh in flight cannot fail a good renewal.
    payload = jwt.decode(response.tokens.access_token, options={"verify_signature": False})
    try:
        return AccessClaims.from_payload(payload)
    except InvalidToken:
        raise DomainError("unauthenticated") from None


Watch = Callable[[str, str | None], tuple[str, ...]]


def watch_nothing(user_id: str, team_id: str | None) -> tuple[str, ...]:
    return ()


async def authenticate(
    request: Request,
    *,
    renew: bool = True,
    rate_limit: bool = True,
    method: str | None = None,
    watch: Watch = watch_nothing,
) -> AuthContext:
    """Resolve the caller or raise 401; records the caller on the request's exchange.

    `method` is the method the CSRF rules judge (forward auth passes the proxied request's).
    `watch` names the change revisions the route's caches compare (gateway/change_revisions.py),
    read with the rate limit into `revisions`; routes without such a cache read none."""
    gw = gateway_of(request)
    try:
        ctx = await _credentials(gw, request, renew=renew, method=method or request.method)
    except DomainError as exc:
        if exc.code in ("unauthenticated", "session_expired") and rate_limit:
            # A failed authentication is anonymous traffic: counted, and refused once over.
            apply_decision(request, await limit_anonymous_ip(gw, request))
        raise
    decision: Decision | None = None
    if rate_limit:
        # One Redis round trip: the limit, and whether sessions recorded a revocation that
        # the NATS feed has not brought yet.
        decision = await limit_authenticated(gw, request, ctx, watch(ctx.user_id, ctx.team_id))
        if gw.revocations.known_revoked(ctx.session_id):
            revoked = True
        elif decision.revoked is not None:
            revoked = decision.revoked
        elif not decision.allowed:
            revoked = False  # refused without asking Redis (known over-limit): 429 either way
        else:
            revoked = await gw.revocations.is_revoked(ctx.session_id)  # 503 when undecidable
    else:
        revoked = await gw.revocations.is_revoked(ctx.session_id)
    if revoked:
        if ctx.via == "cookie":
            exchange_of(request).drop_cookies()
        raise DomainError("session_expired", "The session was revoked")
    if decision is not None and decision.watched is not None:
        ctx = replace(ctx, revisions=decision.watched)
    exchange_of(request).auth = ctx
    if gw.activity is not None:
        gw.activity.seen(ctx.session_id)
    apply_decision(request, decision)
    if ctx.claims.scope == ENROLLMENT_SCOPE and not enrollment_allows(request.method, route_template(request)):
        raise DomainError("mfa_enrollment_required", "Enable two-factor authentication to continue")
    return ctx


async def _credentials(gw: Gateway, request: Request, *, renew: bool, method: str) -> AuthContext:
    bearer = _bearer(request)
    if bearer is None:
        return await _from_cookies(gw, request, renew=renew, method=method)
    try:
        claims = await gw.verifier.verify(bearer)
    except InvalidToken as exc:
        raise DomainError("session_expired" if exc.expired else "unauthenticated") from None
    return AuthContext(claims, "bearer")


async def _from_cookies(gw: Gateway, request: Request, *, renew: bool, method: str) -> AuthContext:
    names = gw.cookies.names
    access = request.cookies.get(names.session)
    refresh = request.cookies.get(names.refresh)
    unsafe = method.upper() in csrf.UNSAFE_METHODS
    proof = csrf.CookieCsrf(request.headers.get("x-csrf-token"), request.cookies.get(names.csrf))
    if unsafe and (access or refresh):
        proof.check_echoed()
    claims: AccessClaims | None = None
    if access:
        try:
            claims = await gw.verifier.verify(access)
        except InvalidToken:
            claims = None
    needs_renewal = claims is None or claims.renewal_due(time.time())
    if needs_renewal and refresh and renew:
        # Renewing writes in the sessions service: the refresh budget applies first.
        refresh_decision = await limit_refresh(gw, request)
        if not refresh_decision.allowed:
            if claims is None:
                apply_decision(request, refresh_decision)
            refresh = ""  # still valid: serve the request without renewing it this time
    if needs_renewal and refresh and renew:
        try:
            claims = await _renew(gw, request, refresh)
        except DomainError as exc:
            if exc.code in ("unauthenticated", "session_expired"):
                exchange_of(request).drop_cookies()
                raise
            if claims is None:
                raise
            # Sessions unreachable but the access token is still valid: serve the request.
    if claims is None:
        raise DomainError("unauthenticated")
    if unsafe:
        # A freshly renewed session keeps its id, so the cookie stays bound to it.
        proof.check_bound(gw.secret, claims.session_id)
    return AuthContext(claims, "cookie")


async def limit_authenticated(gw: Gateway, request: Request, ctx: AuthContext, watch: tuple[str, ...] = ()) -> Decision:
    """Count the request against its team's plan (or the user's starter rate). The count is
    kept per team whatever the plan, so a plan change applies to the next request."""
    revoked_key = redis_keys.revoked_session(ctx.session_id)
    if ctx.team_id:
        plan = await gw.plans.plan_of(ctx.team_id)
        return await gw.limiter.hit(f"team-{plan}", ctx.team_id, limit_of(plan), revoked_key, scope="team", watch=watch)
    return await gw.limiter.hit(
        f"user-{DEFAULT_PLAN}", ctx.user_id, limit_of(DEFAULT_PLAN), revoked_key, scope="user", watch=watch
    )


def apply_decision(request: Request, decision: Decision | None) -> None:
    if decision is None:
        return
    exchange_of(request).ratelimit = decision
    if not decision.allowed:
        raise DomainError("rate_limited", "Rate limit exceeded; retry later", retry_after_seconds=decision.retry_after)


async def limit_anonymous(request: Request, account: str | None = None) -> None:
    """Unauthenticated auth endpoints: per client IP and, when known, per account."""
    gw = gateway_of(request)
    # Counted once per request: usually already by the pipeline, before the body was read.
    apply_decision(request, await limit_anonymous_ip(gw, request))
    if account:
        # Identity's normalization, keyed, so Redis never holds the addresses people typed.
        key = account_key(gw.secret, account)
        apply_decision(request, await gw.limiter.hit("anon-account", key, gw.anonymous_limits.per_account))
