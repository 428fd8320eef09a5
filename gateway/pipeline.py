"""What every request shares, as one pure ASGI middleware (no per-request task groups):
request id, client IP, identity-header stripping, the 64 KiB body limit, early refusals
(content type, origin CSRF), and the headers that depend on what the handler did
(cookies, cache, rate limit, request id). One log line per request."""

from __future__ import annotations

import asyncio
import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deelrx_kit.errors import DomainError
from deelrx_kit.ids import new_id
from gateway import csrf, device_cookie
from gateway.auth import absolute_max_age
from gateway.client_ip import client_ip
from gateway.early_limits import count_unlimited, limit_anonymous_ip, limit_early
from gateway.exchange import Exchange
from gateway.problems import problem_response
from gateway.ratelimit import Decision
from gateway.state import Gateway

log = structlog.get_logger("deelrx.gateway")

MAX_BODY_BYTES = 64 * 1024
# Identity headers the gateway sets for forward auth; never trusted from outside.
STRIPPED_HEADERS = frozenset({b"x-user-id", b"x-team-id", b"x-session-id", b"x-role"})
JSON_TYPES = ("application/json",)
SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)


class RequestPipeline:
    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        gw = self.gw
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() not in STRIPPED_HEADERS]
        request = Request(scope)
        peer = scope["client"][0] if scope.get("client") else ""
        forwarded = request.headers.getlist("x-forwarded-for")
        exchange = Exchange(new_id("req"), client_ip(peer, forwarded, gw.trusted_proxies))
        exchange.install(scope)
        status = 0
        answered = False  # set once the pipeline itself answered (413): the app's answer is dropped
        received = 0
        # Error answers are counted before they start (app.py, early_limits.count_unlimited). One
        # that started with no limit counted (a CORS preflight, a handler that applies none) is
        # counted by a task: never a Redis call inside `send`, and awaited before the request ends.
        late_count: asyncio.Task[Decision] | None = None

        async def finishing_send(message: Message) -> None:
            nonlocal status, late_count
            if message["type"] == "http.response.start":
                status = message["status"]
                if late_count is None and _counts_anonymously(scope, exchange):
                    late_count = asyncio.create_task(limit_anonymous_ip(gw, request))
                finish_headers(gw, exchange, MutableHeaders(scope=message))
            await send(message)

        async def app_send(message: Message) -> None:
            if not answered:
                await finishing_send(message)

        async def limited_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    too_large = DomainError("payload_too_large", "Request body exceeds 64 KiB")
                    await count_unlimited(gw, request)
                    await problem_response(request, too_large)(scope, receive, finishing_send)
                    answered = True
                    return {"type": "http.disconnect"}
            return message

        structlog.contextvars.bind_contextvars(request_id=exchange.request_id)
        try:
            refused = refuse_early(gw, request)
            if refused is None:
                # Unauthenticated, refresh and public traffic: counted and refused before any work.
                decision = await limit_early(gw, request)
                if decision is not None:
                    exchange.ratelimit = decision
                    if not decision.allowed:
                        refused = DomainError(
                            "rate_limited", "Rate limit exceeded; retry later", retry_after_seconds=decision.retry_after
                        )
            if refused is not None:
                await count_unlimited(gw, request)
                await problem_response(request, refused)(scope, receive, finishing_send)
            else:
                await self.app(scope, limited_receive, app_send)
        finally:
            if late_count is not None:
                await asyncio.gather(late_count, return_exceptions=True)
            structlog.contextvars.unbind_contextvars("request_id")
            log.info(
                "http_request",
                request_id=exchange.request_id,
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
                user_id=exchange.auth.user_id if exchange.auth is not None else None,
            )


def _counts_anonymously(scope: Scope, exchange: Exchange) -> bool:
    return str(scope["path"]).startswith("/v1/") and exchange.ratelimit is None


def refuse_early(gw: Gateway, request: Request) -> DomainError | None:
    """Checks that need no handler: body size announced, content type, origin-based CSRF."""
    if request.method not in csrf.UNSAFE_METHODS:
        return None
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        return DomainError("payload_too_large", "Request body exceeds 64 KiB")
    has_body = (length not in (None, "0")) or "transfer-encoding" in request.headers
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and content_type not in JSON_TYPES:
        return DomainError("unsupported_media_type", "Send the body as application/json")
    if _is_bearer(request):
        return None
    return csrf.cross_site_refusal(request.headers, gw.settings.public_origin)


def _is_bearer(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def finish_headers(gw: Gateway, exchange: Exchange, headers: MutableHeaders) -> None:
    """Cookies, cache and rate-limit headers that depend on what the handler did (no I/O)."""
    cookies = Response()
    issued = exchange.issued
    clear = exchange.clear_cookies
    # Tokens renewed during this request are delivered even when the answer is an error
    # (rate limit, CSRF...): the old refresh token is already rotated, so dropping them
    # would end the session at the next renewal.
    if issued is not None and not clear:
        gw.cookies.set_tokens(
            cookies,
            access=issued.access_token,
            access_max_age=issued.expires_in,
            refresh=issued.refresh_token,
            refresh_max_age=absolute_max_age(issued.session),
            csrf=csrf.token_for(gw.secret, issued.session.id),
        )
    elif clear:
        gw.cookies.clear(cookies)
    for raw_name, raw_value in cookies.raw_headers:
        if raw_name == b"set-cookie":
            headers.append("set-cookie", raw_value.decode("latin-1"))
    device_cookie.write(gw, exchange.device_token, headers)
    if "set-cookie" in headers or exchange.auth is not None or exchange.no_store:
        headers["Cache-Control"] = "no-store"
        headers["Vary"] = "Cookie, Authorization"
    decision = exchange.ratelimit
    if decision is not None:
        for name, value in decision.headers().items():
            headers[name] = value
    headers["X-Request-Id"] = exchange.request_id
    for name, value in SECURITY_HEADERS:
        if name not in headers:
            headers[name] = value
