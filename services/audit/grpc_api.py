"""AuditService: protobuf <-> AuditLog use cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import grpc

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx.common.v1 import common_pb2
from deelrx_kit import timestamps
from deelrx_kit.errors import DomainError
from services.audit.adapters.protobuf_records import alert_message, event_message
from services.audit.app import AuditLog
from services.audit.checkpoints import ChainCheckpoints
from services.audit.domain.alerts import AlertRecord
from services.audit.domain.events import EventRecord, team_chain, user_chain
from services.audit.domain.paging import check_id, check_range, decode_cursor
from services.audit.live_hub import SubscriberDropped
from services.audit.stream_resume import position_of, replay_after
from services.audit.triage import AuditActions


def _range(r: common_pb2.TimeRange) -> tuple[datetime | None, datetime | None]:
    since = timestamps.to_datetime(r.since, "range/since") if r.HasField("since") else None
    until = timestamps.to_datetime(r.until, "range/until") if r.HasField("until") else None
    return since, until


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(
        self, audit: AuditLog, stop: asyncio.Event, actions: AuditActions, checkpoints: ChainCheckpoints | None = None
    ) -> None:
        self.audit = audit
        self.stop = stop
        self.actions = actions
        self.checkpoints = checkpoints

    async def QueryEvents(
        self, request: audit_pb2.QueryEventsRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.QueryEventsResponse:
        since, until = _range(request.range)
        page = await self.audit.query_events(
            team_id=request.team_id,
            user_id=request.user_id,
            types=list(request.types),
            actor_user_id=request.actor_user_id,
            since=since,
            until=until,
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return audit_pb2.QueryEventsResponse(
            events=[event_message(e) for e in page.items],
            page=common_pb2.PageResponse(next_cursor=page.next_cursor),
        )

    async def ExportEvents(
        self, request: audit_pb2.ExportEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[audit_pb2.AuditEvent]:
        since, until = _range(request.range)
        if not request.team_id:
            raise DomainError("validation_error", "team_id is required")
        check_id("/team_id", request.team_id)
        check_range(since, until)
        # Audited before the first event leaves, so an export cut short is on record too.
        await self.actions.record_export(
            context=request.context, team_id=request.team_id, format=request.format, since=since, until=until
        )
        async for event in self.audit.export_events(team_id=request.team_id, since=since, until=until):
            yield event_message(event)

    async def VerifyChain(
        self, request: audit_pb2.VerifyChainRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.VerifyChainResponse:
        check = await self.audit.verify_chain(team_id=request.team_id, user_id=request.user_id)
        if check.ok and self.checkpoints is not None and check.events_checked:
            # On demand: a verified head is signed, so a later cut or rewrite shows.
            await self.checkpoints.sign_head(
                team_chain(request.team_id) if request.team_id else user_chain(request.user_id)
            )
        if request.context.user_id:
            await self.actions.record_verification(
                context=request.context, team_id=request.team_id, user_id=request.user_id, result=check
            )
        return audit_pb2.VerifyChainResponse(
            ok=check.ok,
            events_checked=check.events_checked,
            head_hash=check.head_hash,
            first_bad_event_id=check.first_bad_event_id,
            problem=check.problem,
            checkpoints_checked=check.checkpoints_checked,
        )

    async def StreamEvents(
        self, request: audit_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[audit_pb2.StreamItem]:
        resume = decode_cursor(request.resume_after)
        members = [m for m in request.member_user_ids if m]
        sub = self.audit.subscribe(team_id=request.team_id, member_user_ids=members)
        try:
            # Headers go out once the subscription exists: a client that awaited them
            # receives everything stored from then on.
            await context.send_initial_metadata(())
            replayed: set[str] = set()
            if resume is not None:
                async for item in replay_after(
                    self.audit.sessionmaker, self.audit.events, self.audit.alerts, request.team_id, members, resume
                ):
                    replayed.add(item.id)
                    yield _stream_item(item)
            async for item in self.audit.hub.items(sub, self.stop):
                if item.id in replayed:
                    continue  # stored while we replayed: sent already
                yield _stream_item(item)
        except SubscriberDropped:
            raise DomainError("unavailable", "live stream fell behind; reconnect") from None
        finally:
            self.audit.hub.unsubscribe(sub)

    async def ListAlerts(
        self, request: audit_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.ListAlertsResponse:
        page = await self.audit.list_alerts(
            team_id=request.team_id,
            member_user_ids=list(request.member_user_ids),
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        alerts = await self.actions.with_team_states(request.team_id, page.items)
        return audit_pb2.ListAlertsResponse(
            alerts=[alert_message(a) for a in alerts],
            page=common_pb2.PageResponse(next_cursor=page.next_cursor),
        )

    async def UpdateAlert(
        self, request: audit_pb2.UpdateAlertRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.UpdateAlertResponse:
        alert = await self.actions.update_alert(
            context=request.context,
            team_id=request.team_id,
            member_user_ids=list(request.member_user_ids),
            alert_id=request.alert_id,
            status=request.status,
            note=request.note,
        )
        return audit_pb2.UpdateAlertResponse(alert=alert_message(alert))


def _stream_item(item: AlertRecord | object) -> audit_pb2.StreamItem:
    if isinstance(item, AlertRecord):
        return audit_pb2.StreamItem(alert=alert_message(item), position=position_of(item))
    assert isinstance(item, EventRecord)
    return audit_pb2.StreamItem(event=event_message(item), position=position_of(item))
