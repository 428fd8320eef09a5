"""The sessions service's audit events, through the kit's `AuditTrail` (staged in the caller's
transaction): what every session event is about, in one place."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx_kit.audit_trail import AuditTrail
from services.sessions.domain.records import SessionRecord

SOURCE = "sessions"


class SessionEvents:
    def __init__(self, audit: AuditTrail) -> None:
        self.audit = audit

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
        """Its team is the session's team, never a token in it; its actor the caller, else the
        session's owner."""
        await self.audit.record(
            tx,
            type,
            ctx,
            team_id=team_id,
            actor_user_id=(ctx.user_id if ctx and ctx.user_id else user_id),
            target=("session", session_id),
            outcome=outcome,
            details=details,
            session_id=session_id,
        )

    def notify(self) -> None:
        """After commit: wake the outbox relay so the events go out at once."""
        self.audit.notify()
