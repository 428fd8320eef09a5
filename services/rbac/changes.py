"""How every rbac change is written (shared by the membership, role and assignment use cases).

One transaction first takes the team's revision row (serializing changes of one team on both
backends), re-reads the team, lets the use case apply the domain rules and write, then
increments the revision and stages AuthorizationChanged plus the audit events in the outbox.
After commit the change is announced on core NATS and this replica's snapshot reloaded, so the
next Check finds it in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock
from deelrx_kit.errors import forbidden, validation_error
from deelrx_kit.ids import new_id
from deelrx_kit.nats_bus import RBAC_CHANGED_PREFIX
from services.rbac.domain.permissions import require_role
from services.rbac.domain.team import TeamAuthorization
from services.rbac.ports import ChangeAnnouncer, EventOutbox, RbacStore, Transactions
from services.rbac.snapshots import Snapshots

log = structlog.get_logger(__name__)

SOURCE = "rbac"


@dataclass
class TeamChange:
    """What one change transaction collects before it commits."""

    session: AsyncSession
    state: TeamAuthorization
    events: list[audit_pb2.AuditEvent] = field(default_factory=list)
    # The member the change is about; empty for team-wide changes (role tables).
    user_id: str = ""
    revision: int = 0

    @property
    def current(self) -> int:
        """The team's revision after this change (or as it was, when nothing changed)."""
        return self.revision or self.state.revision


class TeamChanges:
    def __init__(
        self,
        *,
        transactions: Transactions,
        store: RbacStore,
        outbox: EventOutbox,
        audit: AuditTrail,
        announcer: ChangeAnnouncer,
        snapshots: Snapshots,
        clock: Clock,
    ) -> None:
        self.transactions = transactions
        self.store = store
        self.outbox = outbox
        self.audit = audit
        self.announcer = announcer
        self.snapshots = snapshots
        self.clock = clock

    @asynccontextmanager
    async def change(self, team_id: str) -> AsyncIterator[TeamChange]:
        async with self.transactions.writing() as session:
            await self.store.lock_team(session, team_id)
            change = TeamChange(session, await self.store.load_team(session, team_id))
            yield change
            if change.events:
                change.revision = await self.store.bump_revision(session, team_id)
                notice = rbac_pb2.AuthorizationChanged(
                    team_id=team_id, revision=change.revision, user_id=change.user_id
                )
                await self.outbox.add(session, RBAC_CHANGED_PREFIX + team_id, notice, new_id("evt"))
                for event in change.events:
                    event.details.update({"revision": change.revision})
                    await self.audit.stage(session, event)
        if change.revision:
            self.outbox.notify()
            # Before the caller gets its answer, so a request that follows this one is decided
            # at this revision on every replica.
            await self.announcer.announce(team_id, change.revision, change.user_id)
            # Our own write: the next Check must find it in memory, so load it here.
            await self.snapshots.cache.refresh(team_id, change.revision)
            log.info("rbac_changed", team_id=team_id, revision=change.revision, events=len(change.events))

    def event(
        self,
        type: str,
        context: common_pb2.RequestContext | None,
        team_id: str,
        target_id: str,
        details: dict[str, Any],
        target_type: str = "user",
    ) -> audit_pb2.AuditEvent:
        return self.audit.build(type, context, team_id=team_id, target=(target_type, target_id), details=details)


def actor_role(
    state: TeamAuthorization, context: common_pb2.RequestContext | None, declared: str, *, required: bool
) -> str | None:
    """The acting member's role: stored role when the context names the actor (the truth
    beats what a caller declares), else the declared role, else None (internal caller)."""
    if context is not None and context.user_id:
        role = state.role_of(context.user_id)
        if role is None:
            raise forbidden("the actor is not a member of this team")
        return role
    if declared:
        return require_role(declared, "/actor_role")
    if required:
        raise validation_error("/actor_role", "the acting member's role is required")
    return None
