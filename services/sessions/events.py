"""The sessions service's audit events, staged in the caller's transaction (outbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx_kit import audit_events
from deelrx_kit.clock import Clock
from services.sessions.domain.records import SessionRecord
from services.sessions.ports import EventOutbox

SOURCE = "sessions"


class SessionEvents:
    def __init__(self, outbox: EventOutbox, clock: Clock) -> None:
        self.outbox = outbox
        self.clock = clock

    async def stage(
        self,
        tx: AsyncSession,
        type: str,
        ctx: common_pb2.RequestContext | None,
        session: SessionRecord,
        details: dict[str, Any] | None = None,
        outcome: str = "success",
    ) -> None:
        await self.stage_for(tx, type, ctx, session.id, session.user_id, session.team_id, details, outcome)

    async def stage_for(
        self,
        tx: AsyncSession,
        type: str,
        ctx: common_pb2.RequestContext | None,
        session_id: str,
        user_id: str,
        team_id: str,
        details: dict[str, Any] | None = None,
        outcome: str = "success",
    ) -> None:
        """Stage an audit event in `tx`; its team is the session's team, never a token in it."""
        event = audit_events.new_event(
            type,
            source=SOURCE,
            now=self.clock.now(),
            context=ctx,
            team_id=team_id,
            actor_user_id=(ctx.user_id if ctx and ctx.user_id else user_id),
            target=("session", session_id),
            outcome=outcome,
            details=details,
            session_id=session_id,
        )
        await self.outbox.add(tx, audit_events.subject_for(event), event, event.id)

    def notify(self) -> None:
        """After commit: wake the outbox relay so the events go out at once."""
        self.outbox.notify()
