"""Limits that apply before a request does any work, in the request pipeline.

- Unauthenticated `/v1` requests (no Bearer token, no session or refresh cookie) count
  against the per-IP budget of anonymous traffic and are refused before the handler runs.
- Requests that would refresh a session (`/v1/auth/refresh`, or a refresh cookie without a
  session cookie) count against the per-IP refresh budget before sessions' `Refresh` is
  called; `limit_refresh()` covers the requests that carry other cookies too.
- Public endpoints (`/readyz`, the JWKS, the API description) are limited per IP as well;
  `/healthz` is not, so liveness probes never fail on a busy address.
Authenticated requests are limited per team (or user) once the caller is known (gateway/auth.py).
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.exchange import exchange_of
from gateway.limit_keys import ip_key
from gateway.ratelimit import Decision
from gateway.state import Gateway

PUBLIC_PATHS = frozenset({"/readyz", "/.well-known/jwks.json", "/openapi.json", "/docs"})
REFRESH_PATH = "/v1/auth/refresh"


def client_key(gw: Gateway, request: Request) -> str:
    return ip_key(exchange_of(request).client_ip, gw.anonymous_limits.ipv6_prefix)


def _has_bearer(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


async def limit_refresh(gw: Gateway, request: Request) -> Decision:
    """One request that will call sessions' `Refresh`, counted once per request."""
    exchange = exchange_of(request)
    if exchange.refresh_limited is None:
        exchange.refresh_limited = await gw.limiter.hit(
            "refresh-ip", client_key(gw, request), gw.anonymous_limits.refresh_per_ip
        )
    return exchange.refresh_limited


async def limit_anonymous_ip(gw: Gateway, request: Request) -> Decision:
    """One unauthenticated request from this client, counted once per request."""
    exchange = exchange_of(request)
    if exchange.anon_limited is None:
        exchange.anon_limited = await gw.limiter.hit("anon-ip", client_key(gw, request), gw.anonymous_limits.per_ip)
    return exchange.anon_limited


async def count_unlimited(gw: Gateway, request: Request) -> None:
    """A `/v1` answer no limit counted yet (404, 422 before the handler, CSRF...): it counts
    against the client IP, before the answer starts, so it carries that decision's headers."""
    exchange = exchange_of(request)
    if request.scope["path"].startswith("/v1/") and exchange.ratelimit is None:
        exchange.ratelimit = await limit_anonymous_ip(gw, request)


async def limit_early(gw: Gateway, request: Request) -> Decision | None:
    """The decision for a request that is limited before the handler, or None."""
    path = request.url.path
    if path in PUBLIC_PATHS:
        return await gw.limiter.hit("public-ip", client_key(gw, request), gw.anonymous_limits.public_per_ip)
    if not path.startswith("/v1/") or _has_bearer(request):
        return None
    names = gw.cookies.names
    if names.session in request.cookies:
        return None  # a session: limited per team once authenticated
    if path == REFRESH_PATH or names.refresh in request.cookies:
        return await limit_refresh(gw, request)
    return await limit_anonymous_ip(gw, request)
