"""The FastAPI application: one middleware for what every request shares, error mapping
to problem+json, and the routers."""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deelrx_kit.errors import DomainError, Violation
from deelrx_kit.ids import new_id
from gateway import csrf
from gateway.auth import IssuedTokens, absolute_max_age
from gateway.client_ip import client_ip
from gateway.problems import problem_response
from gateway.routes import auth_routes, ops_routes
from gateway.state import Gateway

log = structlog.get_logger("deelrx.gateway")

MAX_BODY_BYTES = 64 * 1024
# Identity headers the gateway sets for forward auth; never trusted from outside.
STRIPPED_HEADERS = frozenset({b"x-user-id", b"x-team-id", b"x-session-id", b"x-role"})
JSON_TYPES = ("application/json",)


class BodyLimit:
    """Pure ASGI: strips identity headers and refuses bodies over 64 KiB, chunked ones too.

    Past the limit it answers 413 itself and tells the app the client went away; whatever
    the app then tries to send is dropped. (Raising from `receive` does not work: Starlette's
    middleware task groups wrap the exception and FastAPI turns it into a 400.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() not in STRIPPED_HEADERS]
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    refused = True
                    too_large = DomainError("payload_too_large", "Request body exceeds 64 KiB")
                    response = problem_response(Request(scope), too_large)
                    await response(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(
        title="DeelRx authentication API",
        version="1.0.0",
        description="Sign-up, login, sessions, MFA, teams and authorization for DeelRx CRM. "
        "Errors are RFC 9457 problem+json with a stable `code`.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gw

    @app.middleware("http")
    async def per_request(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        request.state.request_id = new_id("req")
        peer = request.client.host if request.client else ""
        request.state.client_ip = client_ip(peer, request.headers.getlist("x-forwarded-for"), gw.trusted_proxies)
        structlog.contextvars.bind_contextvars(request_id=request.state.request_id)
        try:
            refused = _refuse_early(gw, request)
            response = problem_response(request, refused) if refused else await call_next(request)
            if request.url.path.startswith("/v1/") and getattr(request.state, "ratelimit", None) is None:
                # Answered before any limit applied (e.g. 401): count it against the client IP.
                request.state.ratelimit = await gw.limiter.hit(
                    "anon-ip", request.state.client_ip, gw.anonymous_limits.per_ip
                )
            _finish(gw, request, response)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        log.info(
            "http_request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
            user_id=getattr(getattr(request.state, "auth", None), "user_id", None),
        )
        return response

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(request, DomainError("malformed_request", "The body is not valid JSON"))
        violations = [Violation(_pointer(e.get("loc", ())), str(e.get("msg", "invalid"))) for e in errors]
        return problem_response(
            request, DomainError("validation_error", "The request is not valid", violations=violations)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "malformed_request"
        )
        return problem_response(request, DomainError(code))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", exc_info=exc)
        return problem_response(request, DomainError("internal"))

    app.include_router(ops_routes.router)
    app.include_router(auth_routes.router)
    if gw.settings.cors_origins.strip():
        origins = [o.strip() for o in gw.settings.cors_origins.split(",") if o.strip() and o.strip() != "*"]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token", "Idempotency-Key"],
        )
    app.add_middleware(BodyLimit)
    return app


def _pointer(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return "/" + "/".join(parts) if parts else ""


def _refuse_early(gw: Gateway, request: Request) -> DomainError | None:
    """Checks that need no handler: content type and origin-based CSRF."""
    if request.method not in csrf.UNSAFE_METHODS:
        return None
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        return DomainError("payload_too_large", "Request body exceeds 64 KiB")
    has_body = (length not in (None, "0")) or "transfer-encoding" in request.headers
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and content_type not in JSON_TYPES:
        return DomainError("unsupported_media_type", "Send the body as application/json")
    if not _is_bearer(request) and not csrf.origin_allowed(
        request.headers.get("origin"), request.headers.get("sec-fetch-site"), gw.settings.public_origin
    ):
        return DomainError("csrf_failed", "Cross-site request refused")
    return None


def _is_bearer(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _finish(gw: Gateway, request: Request, response: Response) -> None:
    """Cookies, cache and rate-limit headers that depend on what the handler did."""
    issued: IssuedTokens | None = getattr(request.state, "issued_cookies", None)
    # Tokens renewed during this request are delivered even when the answer is an error
    # (rate limit, CSRF...): the old refresh token is already rotated, so dropping them
    # would end the session at the next renewal.
    if issued is not None and not getattr(request.state, "clear_cookies", False):
        gw.cookies.set_tokens(
            response,
            access=issued.access_token,
            access_max_age=issued.expires_in,
            refresh=issued.refresh_token,
            refresh_max_age=absolute_max_age(issued.session),
            csrf=csrf.token_for(gw.secret, issued.session.id),
        )
    elif getattr(request.state, "clear_cookies", False):
        gw.cookies.clear(response)
    sets_cookies = any(k == b"set-cookie" for k, _ in response.raw_headers)
    if sets_cookies or getattr(request.state, "auth", None) is not None or getattr(request.state, "no_store", False):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Vary"] = "Cookie, Authorization"
    decision = getattr(request.state, "ratelimit", None)
    if decision is not None:
        for name, value in decision.headers().items():
            response.headers[name] = value
    response.headers["X-Request-Id"] = request.state.request_id
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
