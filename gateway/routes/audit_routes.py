"""Audit trail and security monitoring: team events (list, export, verify), alerts (list,
triage), the live stream (Server-Sent Events) and a user's own security activity.

Team paths are authorized live against the `{tid}` of the path with rbac.Check; a caller
who is not a member gets 404 exactly like a team that does not exist.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import grpc
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from google.protobuf import json_format
from pydantic import Field

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit import grpc_errors
from deelrx_kit.errors import DomainError, validation_error
from gateway.audit_stream import SseStream
from gateway.auth import AuthContext, authenticate
from gateway.clients import call
from gateway.context import request_context
from gateway.presenters import time_of
from gateway.schemas import Body
from gateway.state import Gateway, gateway_of

try:  # step-up (recent authentication) is built with account security; applied when present
    from gateway.stepup import require_step_up  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - until that module is merged

    async def require_step_up(request: Request, auth: AuthContext) -> None:
        return None


router = APIRouter(tags=["audit"])

NOT_A_MEMBER = "not a member"
MAX_TYPES = 20
# A team id travels to rbac and audit only when it looks like one.
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"content": {"application/problem+json": {}}, "description": desc}
    for code, desc in {
        401: "unauthenticated / session_expired / reauthentication_required (export)",
        403: "forbidden (a member without the permission)",
        404: "not_found (no such team, or not a member of it)",
        422: "validation_error",
        429: "rate_limited",
        503: "unavailable",
    }.items()
}


# -- access ---------------------------------------------------------------------------------
def _valid_id(value: str) -> bool:
    return 0 < len(value) <= 64 and set(value) <= _ID_CHARS


async def team_access(request: Request, tid: str, permission: str) -> AuthContext:
    """The caller, allowed `permission` in team `tid`; 404 when not a member (or no team)."""
    auth = await authenticate(request)
    if not _valid_id(tid):
        raise DomainError("not_found", "No such team")
    gw = gateway_of(request)
    try:
        reply = await call(
            gw.clients.rbac.Check, rbac_pb2.CheckRequest(user_id=auth.user_id, team_id=tid, permission=permission)
        )
    except DomainError as exc:
        if exc.code in ("validation_error", "not_found"):
            raise DomainError("not_found", "No such team") from None
        raise
    if not reply.allowed:
        if reply.reason.startswith(NOT_A_MEMBER):
            raise DomainError("not_found", "No such team")
        raise DomainError("forbidden", f"{permission} is required")
    return auth


async def member_ids(gw: Gateway, tid: str) -> list[str]:
    reply = await call(gw.clients.rbac.ListMembers, rbac_pb2.ListMembersRequest(team_id=tid))
    return [m.user_id for m in reply.members]


# -- shapes ---------------------------------------------------------------------------------
def event_json(e: audit_pb2.AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "time": time_of(e.time),
        "type": e.type,
        "actor": {
            "user_id": e.actor.user_id or None,
            "ip": e.actor.ip or None,
            "user_agent": e.actor.user_agent or None,
        },
        "target": {"type": e.target.type, "id": e.target.id} if e.target.type or e.target.id else None,
        "outcome": e.outcome,
        "details": json_format.MessageToDict(e.details),
    }


def alert_json(a: audit_pb2.Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "time": time_of(a.time),
        "rule": a.rule,
        "severity": a.severity,
        "subject": a.subject or None,
        "evidence": {**json_format.MessageToDict(a.evidence), "event_ids": list(a.event_ids)},
        "status": a.status,
        "note": a.note or None,
        "status_changed_at": time_of(a.status_changed_at),
    }


def _time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise validation_error(f"/{name}", f"{name} must be an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise validation_error(f"/{name}", f"{name} must carry a time zone (e.g. Z)")
    return parsed


def _range(since: str | None, until: str | None) -> common_pb2.TimeRange:
    r = common_pb2.TimeRange()
    s, u = _time("since", since), _time("until", until)
    if s is not None:
        r.since.FromDatetime(s)
    if u is not None:
        r.until.FromDatetime(u)
    if s is not None and u is not None and u < s:
        raise validation_error("/until", "until must not be before since")
    return r


def _types(value: str | None) -> list[str]:
    if not value:
        return []
    types = [t.strip() for t in value.split(",") if t.strip()]
    if len(types) > MAX_TYPES or any(len(t) > 100 for t in types):
        raise validation_error("/type", f"at most {MAX_TYPES} types of at most 100 characters")
    return types


Limit = Query(default=50, ge=1, le=200)
Cursor = Query(default=None, max_length=512)
Since = Query(default=None, max_length=64, description="RFC 3339, inclusive")
Until = Query(default=None, max_length=64, description="RFC 3339, exclusive")


# -- events ---------------------------------------------------------------------------------
@router.get("/v1/teams/{tid}/audit-events", responses=PROBLEMS)
async def list_events(
    tid: str,
    request: Request,
    type: str | None = Query(default=None, max_length=2100, description="type, or comma-separated types; `auth.*`"),
    actor: str | None = Query(default=None, max_length=64, description="acting user id"),
    since: str | None = Since,
    until: str | None = Until,
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> dict[str, Any]:
    await team_access(request, tid, "audit.read")
    gw = gateway_of(request)
    reply = await call(
        gw.clients.audit.QueryEvents,
        audit_pb2.QueryEventsRequest(
            team_id=tid,
            types=_types(type),
            actor_user_id=actor or "",
            range=_range(since, until),
            page=common_pb2.PageRequest(limit=limit, cursor=cursor or ""),
        ),
    )
    return {"events": [event_json(e) for e in reply.events], "next_cursor": reply.page.next_cursor or None}


CSV_COLUMNS = (
    "id",
    "time",
    "type",
    "actor_user_id",
    "actor_ip",
    "actor_user_agent",
    "target_type",
    "target_id",
    "outcome",
    "details",
)
# Cells a spreadsheet would read as a formula (OWASP CSV injection), neutralised with a quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_row(e: audit_pb2.AuditEvent) -> str:
    values = [
        e.id,
        time_of(e.time) or "",
        e.type,
        e.actor.user_id,
        e.actor.ip,
        e.actor.user_agent,
        e.target.type,
        e.target.id,
        e.outcome,
        json.dumps(json_format.MessageToDict(e.details), separators=(",", ":"), ensure_ascii=False, sort_keys=True),
    ]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([csv_cell(v) for v in values])
    return out.getvalue()


@router.get(
    "/v1/teams/{tid}/audit-events/export",
    responses={
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}, "description": "the events, oldest first"},
        **PROBLEMS,
    },
)
async def export_events(
    tid: str,
    request: Request,
    format: Literal["ndjson", "csv"] = Query(default="ndjson"),
    since: str | None = Since,
    until: str | None = Until,
) -> StreamingResponse:
    auth = await team_access(request, tid, "audit.read")
    await require_step_up(request, auth)
    gw = gateway_of(request)
    stream = gw.clients.audit.ExportEvents(
        audit_pb2.ExportEventsRequest(
            team_id=tid, range=_range(since, until), context=request_context(request), format=format
        )
    )
    # The first message (or the error) before answering: a refused export is a 4xx, not a cut stream.
    try:
        first = await stream.read()
    except grpc.aio.AioRpcError as exc:
        raise grpc_errors.decode(exc) from None

    async def body() -> AsyncIterator[bytes]:
        try:
            if format == "csv":
                yield (",".join(CSV_COLUMNS) + "\r\n").encode()
            item = first
            while item is not grpc.aio.EOF:
                assert isinstance(item, audit_pb2.AuditEvent)
                if format == "csv":
                    yield csv_row(item).encode()
                else:
                    yield (json.dumps(event_json(item), separators=(",", ":"), ensure_ascii=False) + "\n").encode()
                item = await stream.read()
        finally:
            stream.cancel()

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        body(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit-{tid}-{stamp}.{format}"'},
    )


@router.get("/v1/teams/{tid}/audit-events/verify", responses=PROBLEMS)
async def verify_events(tid: str, request: Request) -> dict[str, Any]:
    await team_access(request, tid, "audit.read")
    gw = gateway_of(request)
    reply = await call(
        gw.clients.audit.VerifyChain,
        audit_pb2.VerifyChainRequest(team_id=tid, context=request_context(request)),
        timeout=120,
    )
    answer: dict[str, Any] = {
        "ok": reply.ok,
        "events_checked": reply.events_checked,
        "head_hash": reply.head_hash,
        "checkpoints_checked": reply.checkpoints_checked,
    }
    if reply.first_bad_event_id:
        answer["first_bad_event_id"] = reply.first_bad_event_id
    if reply.problem:
        answer["problem"] = reply.problem
    return answer


# -- alerts ---------------------------------------------------------------------------------
@router.get("/v1/teams/{tid}/security/alerts", responses=PROBLEMS)
async def list_alerts(tid: str, request: Request, limit: int = Limit, cursor: str | None = Cursor) -> dict[str, Any]:
    await team_access(request, tid, "audit.read")
    gw = gateway_of(request)
    reply = await call(
        gw.clients.audit.ListAlerts,
        audit_pb2.ListAlertsRequest(
            team_id=tid,
            member_user_ids=await member_ids(gw, tid),
            page=common_pb2.PageRequest(limit=limit, cursor=cursor or ""),
        ),
    )
    return {"alerts": [alert_json(a) for a in reply.alerts], "next_cursor": reply.page.next_cursor or None}


class AlertUpdate(Body):
    status: Literal["acknowledged", "resolved"]
    note: str | None = Field(default=None, max_length=1000)


@router.patch("/v1/teams/{tid}/security/alerts/{id}", responses=PROBLEMS)
async def update_alert(
    tid: str, body: AlertUpdate, request: Request, alert_id: str = PathParam(alias="id")
) -> dict[str, Any]:
    await team_access(request, tid, "security.manage")
    if not _valid_id(alert_id):
        raise DomainError("not_found", "No such alert")
    gw = gateway_of(request)
    reply = await call(
        gw.clients.audit.UpdateAlert,
        audit_pb2.UpdateAlertRequest(
            context=request_context(request),
            team_id=tid,
            member_user_ids=await member_ids(gw, tid),
            alert_id=alert_id,
            status=body.status,
            note=body.note or "",
        ),
    )
    return alert_json(reply.alert)


# -- live stream ----------------------------------------------------------------------------
@router.get(
    "/v1/teams/{tid}/security/stream",
    responses={200: {"content": {"text/event-stream": {}}, "description": "events `audit` and `alert`"}, **PROBLEMS},
)
async def security_stream(tid: str, request: Request) -> StreamingResponse:
    auth = await team_access(request, tid, "audit.read")
    gw = gateway_of(request)
    last_id = request.headers.get("last-event-id", "").strip()
    if len(last_id) > 512 or not set(last_id) <= _ID_CHARS:
        raise validation_error("/Last-Event-ID", "Last-Event-ID is not a position this stream sent")

    async def still_allowed() -> bool:
        if await gw.revocations.is_revoked(auth.session_id):
            return False
        with contextlib.suppress(DomainError):
            reply: rbac_pb2.CheckResponse = await call(
                gw.clients.rbac.Check,
                rbac_pb2.CheckRequest(user_id=auth.user_id, team_id=tid, permission="audit.read"),
            )
            return reply.allowed
        return True  # rbac unreachable for a moment: the next heartbeat asks again

    stream = SseStream(
        gw.clients.audit.StreamEvents(
            audit_pb2.StreamEventsRequest(team_id=tid, member_user_ids=await member_ids(gw, tid), resume_after=last_id)
        ),
        render_event=event_json,
        render_alert=alert_json,
        heartbeat_seconds=gw.settings.audit_stream_heartbeat_seconds,
        ends_at=auth.claims.exp,
        still_allowed=still_allowed,
    )
    await stream.opened()
    return StreamingResponse(
        stream.body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- a user's own activity ----------------------------------------------------------------------
@router.get("/v1/me/security-activity", tags=["account"], responses=PROBLEMS)
async def my_security_activity(
    request: Request,
    type: str | None = Query(default=None, max_length=2100),
    since: str | None = Since,
    until: str | None = Until,
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> dict[str, Any]:
    auth = await authenticate(request)
    gw = gateway_of(request)
    reply = await call(
        gw.clients.audit.QueryEvents,
        audit_pb2.QueryEventsRequest(
            user_id=auth.user_id,
            types=_types(type),
            range=_range(since, until),
            page=common_pb2.PageRequest(limit=limit, cursor=cursor or ""),
        ),
    )
    return {"events": [event_json(e) for e in reply.events], "next_cursor": reply.page.next_cursor or None}
