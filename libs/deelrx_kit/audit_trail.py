"""A service's audit trail: build an `AuditEvent` and stage it in the transactional outbox
inside the caller's transaction, so the change and its event commit (or roll back) together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx_kit import audit_events
from deelrx_kit.clock import Clock
from deelrx_kit.outbox import Outbox


class AuditTrail:
    def __init__(self, outbox: Outbox, *, source: str, clock: Clock) -> None:
        self.outbox = outbox
        self.source = source
        self.clock = clock

    def build(
        self,
        type: str,
        context: common_pb2.RequestContext | None,
        *,
        team_id: str = "",
        actor_user_id: str = "",
        target: tuple[str, str] | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
        subject_hash: str = "",
        session_id: str = "",
    ) -> audit_pb2.AuditEvent:
        """The event, stamped now. `actor_user_id` is who acted (default: the caller in
        `context`); `target` is what was acted on, as (type, id): a user, a role, a customer."""
        return audit_events.new_event(
            type,
            source=self.source,
            now=self.clock.now(),
            context=context,
            team_id=team_id,
            actor_user_id=actor_user_id,
            target=target,
            outcome=outcome,
            details=details,
            subject_hash=subject_hash,
            session_id=session_id,
        )

    async def stage(self, tx: AsyncSession, event: audit_pb2.AuditEvent) -> None:
        """Stage a built event in `tx`; the relay publishes it once `tx` committed."""
        await self.outbox.add(tx, audit_events.subject_for(event), event, event.id)

    async def record(
        self, tx: AsyncSession, type: str, context: common_pb2.RequestContext | None, **fields: Any
    ) -> audit_pb2.AuditEvent:
        """Build the event (the keyword fields of `build`) and stage it in `tx`."""
        event = self.build(type, context, **fields)
        await self.stage(tx, event)
        return event

    def notify(self) -> None:
        """After the commit: wake the relay so the events go out at once."""
        self.outbox.notify()
