"""GET /v1/auth/verify: forward auth for the CRM's other services behind nginx `auth_request`,
Traefik `ForwardAuth` or Envoy `ext_authz`.

The hot path of the product: the token is verified locally (claims cached per token), the
revocation set is in memory, and one Redis round trip counts the request against the team's
rate limit and catches a revocation the NATS feed has not brought yet. The role for `X-Role`
comes from the gateway's role cache (gateway/roles.py); the team's plan from the plan cache.
Only `?permission=` asks rbac (whose decisions are answered from its memory). Never renews.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.errors import DomainError
from gateway import change_revisions, csrf
from gateway.auth import authenticate
from gateway.clients import call
from gateway.state import gateway_of

router = APIRouter(tags=["forward auth"])

IDENTITY_HEADERS = ("X-User-Id", "X-Team-Id", "X-Session-Id", "X-Role")
_METHOD = re.compile(r"^[A-Za-z]{1,16}$")
_PERMISSION = r"^[a-z][a-z_]*\.[a-z][a-z_]*$"
_RESOURCE = r"^[a-z][a-z_]*:[A-Za-z0-9_.\-]{1,128}$"

VERIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Authenticated (and allowed, when a permission was asked). The identity is in the "
        "`X-User-Id`, `X-Team-Id`, `X-Session-Id` and `X-Role` headers (team and role empty without an "
        "active team); the body is empty."
    },
    **{
        code: {"content": {"application/problem+json": {}}, "description": desc}
        for code, desc in {
            401: "unauthenticated / session_expired (renew with /v1/auth/refresh; verify never renews)",
            403: "forbidden (permission denied, not a member of the active team) / csrf_failed / "
            "mfa_enrollment_required",
            422: "validation_error (malformed permission or resource)",
            429: "rate_limited (the team's plan)",
            503: "unavailable",
        }.items()
    },
}


def _judged_method(request: Request, own_path: bool) -> str:
    """The proxied request's method: `X-Forwarded-Method` (nginx, Traefik), or the request's own
    method when the proxy forwards it as is (Envoy, on /v1/auth/verify/<original path>)."""
    if own_path:
        return request.method
    forwarded = request.headers.getlist("x-forwarded-method")
    if not forwarded:
        return request.method
    if len(forwarded) > 1 or not _METHOD.match(forwarded[0]):
        raise DomainError("malformed_request", "X-Forwarded-Method must be one HTTP method")
    return forwarded[0].upper()


async def _verify(request: Request, permission: str | None, resource: str | None, own_path: bool) -> Response:
    gw = gateway_of(request)
    method = _judged_method(request, own_path)
    # An unsafe proxied request that is not Bearer-authenticated: the origin checks apply
    # (the pipeline's early check sees only this request's own method).
    if method in csrf.UNSAFE_METHODS and "authorization" not in request.headers:
        refused = csrf.cross_site_refusal(request.headers, gw.settings.public_origin)
        if refused is not None:
            raise refused
    # Reads the change revisions only for the role cache, so only with an active team.
    ctx = await authenticate(request, renew=False, method=method, watch=change_revisions.role_keys)
    role = ""
    if ctx.team_id:
        assert gw.roles is not None
        found = await gw.roles.role_of(ctx.user_id, ctx.team_id, ctx.revisions)
        if found is None:
            raise DomainError("forbidden", "Not a member of the active team")
        role = found
    if permission:
        if not ctx.team_id:
            raise DomainError("forbidden", "No active team")
        decision = await call(
            gw.clients.rbac.Check,
            rbac_pb2.CheckRequest(
                user_id=ctx.user_id, team_id=ctx.team_id, permission=permission, resource=resource or ""
            ),
        )
        if not decision.allowed:
            raise DomainError("forbidden", "Permission denied")
    elif resource:
        raise DomainError("validation_error", "resource needs a permission")
    headers = {
        "X-User-Id": ctx.user_id,
        "X-Team-Id": ctx.team_id or "",
        "X-Session-Id": ctx.session_id,
        "X-Role": role,
    }
    return Response(status_code=200, headers=headers)


PERMISSION_QUERY = Query(
    default=None, max_length=64, pattern=_PERMISSION, description="e.g. `customers.read`: adds an RBAC check"
)
RESOURCE_QUERY = Query(
    default=None, max_length=160, pattern=_RESOURCE, description="`type:id`, e.g. `customer:c_42` (with permission)"
)


@router.get("/v1/auth/verify", response_class=Response, responses=VERIFY_RESPONSES)
async def verify(
    request: Request, permission: str | None = PERMISSION_QUERY, resource: str | None = RESOURCE_QUERY
) -> Response:
    """Forward auth (nginx `auth_request`, Traefik `ForwardAuth`): the proxy passes the original
    request's cookies or `Authorization`, and its method in `X-Forwarded-Method`."""
    return await _verify(request, permission, resource, own_path=False)


async def verify_as_prefix(
    request: Request,
    original_path: str,
    permission: str | None = PERMISSION_QUERY,
    resource: str | None = RESOURCE_QUERY,
) -> Response:
    """Forward auth for Envoy's HTTP `ext_authz` (`path_prefix: /v1/auth/verify`), which sends the
    original method and path; the method is what the CSRF rules judge."""
    return await _verify(request, permission, resource, own_path=True)


# One route per method, each with its own OpenAPI operation id.
for _method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
    router.add_api_route(
        "/v1/auth/verify/{original_path:path}",
        verify_as_prefix,
        methods=[_method],
        response_class=Response,
        responses=VERIFY_RESPONSES,
        operation_id=f"verify_envoy_{_method.lower()}",
        include_in_schema=_method != "HEAD",
    )
