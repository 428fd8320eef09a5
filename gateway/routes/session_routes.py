"""/v1/sessions: the caller's own sessions and devices; revoke one, the others, or all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel

from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.errors import DomainError, validation_error
from deelrx_kit.ids import has_prefix
from gateway.auth import AuthContext, authenticate
from gateway.clients import call
from gateway.context import request_context
from gateway.exchange import exchange_of
from gateway.presenters import time_of
from gateway.routes.auth_routes import PROBLEMS
from gateway.state import Gateway, gateway_of

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
SCOPES = ("others", "all")


class DeviceOut(BaseModel):
    browser: str
    os: str
    type: str
    label: str


class ListedSession(BaseModel):
    id: str
    current: bool
    device: DeviceOut
    ip: str
    created_at: str
    last_seen_at: str
    expires_at: str
    amr: list[str]


class SessionList(BaseModel):
    sessions: list[ListedSession]


class RevokedCount(BaseModel):
    revoked: int


SESSION_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    404: {"content": {"application/problem+json": {}}, "description": "not_found"},
}


def listed_session_json(session: sessions_pb2.Session, current_session_id: str) -> dict[str, Any]:
    device = session.device
    return {
        "id": session.id,
        "current": session.id == current_session_id,
        "device": {"browser": device.browser, "os": device.os, "type": device.type, "label": device.label},
        "ip": session.ip,
        "created_at": time_of(session.created_at),
        "last_seen_at": time_of(session.last_seen_at),
        "expires_at": time_of(session.expires_at),
        "amr": list(session.amr),
    }


@router.get("", response_model=SessionList, responses=SESSION_PROBLEMS)
async def list_sessions(request: Request) -> dict[str, Any]:
    ctx = await authenticate(request)
    gw = gateway_of(request)
    reply = await call(gw.clients.sessions.ListSessions, sessions_pb2.ListSessionsRequest(user_id=ctx.user_id))
    return {"sessions": [listed_session_json(s, ctx.session_id) for s in reply.sessions]}


def _revoked_here(gw: Gateway, request: Request, ctx: AuthContext, session_ids: list[str]) -> None:
    """This replica refuses them at once; the others learn it from Redis and NATS."""
    gw.revocations.add(session_ids)
    if ctx.session_id in session_ids:
        exchange_of(request).end_cookie_session(clear=ctx.via == "cookie")


@router.delete(
    "/{id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Revoked (also when it was revoked already)"}, **SESSION_PROBLEMS},
)
async def revoke_session(request: Request, session_id: str = Path(alias="id")) -> Response:
    ctx = await authenticate(request)
    gw = gateway_of(request)
    if not has_prefix(session_id, "ses"):
        raise DomainError("not_found", "Session not found")
    # Another user's session answers not_found, exactly like one that does not exist.
    await call(
        gw.clients.sessions.RevokeSession,
        sessions_pb2.RevokeSessionRequest(
            context=request_context(request), session_id=session_id, user_id=ctx.user_id, reason="user_revoked"
        ),
    )
    _revoked_here(gw, request, ctx, [session_id])
    return Response(status_code=204)


@router.delete("", response_model=RevokedCount, responses=SESSION_PROBLEMS)
async def revoke_sessions(
    request: Request,
    scope: str | None = Query(
        default=None,
        max_length=16,
        description="Required. `others`: every session but this one; `all`: this one too.",
        json_schema_extra={"enum": list(SCOPES)},
    ),
) -> dict[str, int]:
    ctx = await authenticate(request)
    if scope not in SCOPES:
        raise validation_error("/scope", "scope is required: others or all")
    gw = gateway_of(request)
    keep = ctx.session_id if scope == "others" else ""
    # The ids revoked are not returned; this replica learns them from the feed and Redis.
    reply = await call(
        gw.clients.sessions.RevokeSessions,
        sessions_pb2.RevokeSessionsRequest(
            context=request_context(request),
            user_id=ctx.user_id,
            except_session_id=keep,
            reason="user_revoked_others" if scope == "others" else "user_revoked_all",
        ),
    )
    if scope == "all":
        _revoked_here(gw, request, ctx, [ctx.session_id])
    return {"revoked": reply.revoked}
