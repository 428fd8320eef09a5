"""The FastAPI application: the request pipeline (gateway/pipeline.py), error mapping to
problem+json, and the routers."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from deelrx_kit.errors import DomainError, Violation
from gateway.change_revisions import BumpRevisionsOnWrite
from gateway.early_limits import count_unlimited
from gateway.idempotency import IdempotencyMiddleware, document_in_openapi
from gateway.pipeline import RequestPipeline
from gateway.problems import problem_response
from gateway.routes import (
    audit_routes,
    auth_routes,
    forward_auth_routes,
    member_routes,
    mfa_login_routes,
    mfa_routes,
    ops_routes,
    password_routes,
    role_routes,
    session_routes,
    switch_team_routes,
    team_routes,
)
from gateway.state import Gateway
from gateway.web import pages
from gateway.web.headers import BrowserSecurityHeaders

log = structlog.get_logger("deelrx.gateway")


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(
        title="DeelRx authentication API",
        version="1.0.0",
        description="Sign-up, login, sessions, MFA, teams and authorization for DeelRx CRM. "
        "Errors are RFC 9457 problem+json with a stable `code`.",
        # /docs is served by gateway/web/pages.py from the suite's own files (no CDN).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gw

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        await count_unlimited(gw, request)
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        await count_unlimited(gw, request)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(request, DomainError("malformed_request", "The body is not valid JSON"))
        violations = [Violation(_pointer(e.get("loc", ())), str(e.get("msg", "invalid"))) for e in errors]
        return problem_response(
            request, DomainError("validation_error", "The request is not valid", violations=violations)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        await count_unlimited(gw, request)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "malformed_request"
        )
        # Keeps Starlette's headers, e.g. `Allow` on 405 (RFC 9110).
        return problem_response(request, DomainError(code), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", exc_info=exc)
        return problem_response(request, DomainError("internal"))

    app.include_router(ops_routes.router)
    app.include_router(auth_routes.router)
    app.include_router(forward_auth_routes.router)
    app.include_router(session_routes.router)
    app.include_router(mfa_login_routes.router)
    app.include_router(password_routes.router)
    app.include_router(mfa_routes.router)
    app.include_router(switch_team_routes.router)
    app.include_router(team_routes.router)
    app.include_router(member_routes.router)
    app.include_router(role_routes.router)
    app.include_router(audit_routes.router)
    pages.install(app)
    # Innermost: sees the route's answer and the caller it authenticated.
    app.add_middleware(BumpRevisionsOnWrite, gateway=gw)
    if gw.settings.cors_origins.strip():
        origins = [o.strip() for o in gw.settings.cors_origins.split(",") if o.strip() and o.strip() != "*"]
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token", "Idempotency-Key"],
        )
    app.add_middleware(IdempotencyMiddleware, gateway=gw)
    document_in_openapi(app)
    app.add_middleware(RequestPipeline, gateway=gw)
    app.add_middleware(BrowserSecurityHeaders, https=gw.settings.public_is_https)
    return app


def _pointer(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return "/" + "/".join(parts) if parts else ""
