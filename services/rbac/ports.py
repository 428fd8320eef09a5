"""The ports rbac's use cases depend on: transactions, the SQL store, the outbox and the
core-NATS announcement of a change. main.py wires the adapters; unit tests wire fakes."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from services.rbac.domain.team import AppliedOperation, RoleBinding, TeamAuthorization

RoleOverrides = dict[str, dict[str, frozenset[str]]]


class Transactions(Protocol):
    """Where transactions begin: every store call runs inside one of these."""

    def writing(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read-write unit of work: commit on success, roll back on any error."""

    def reading(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read-only transaction (never takes SQLite's write lock)."""


class RbacStore(Protocol):
    """Memberships, role tables, assignments, revisions; calls run in the caller's transaction."""

    async def lock_team(self, session: AsyncSession, team_id: str) -> int:
        """Create or touch the team's revision row (serializes changes of one team)."""

    async def bump_revision(self, session: AsyncSession, team_id: str) -> int: ...
    async def all_revisions(self, session: AsyncSession) -> dict[str, int]: ...
    async def load_team(self, session: AsyncSession, team_id: str) -> TeamAuthorization: ...
    async def overrides_for(self, session: AsyncSession, team_ids: Iterable[str]) -> RoleOverrides: ...
    async def memberships_of_user(self, session: AsyncSession, user_id: str) -> list[RoleBinding]: ...
    async def add_membership(self, session: AsyncSession, binding: RoleBinding) -> None: ...
    async def set_role(self, session: AsyncSession, team_id: str, user_id: str, role: str) -> None: ...
    async def remove_membership(self, session: AsyncSession, team_id: str, user_id: str) -> None:
        """Also drops the member's customer assignments in the team."""

    async def find_operation(self, session: AsyncSession, operation_id: str) -> AppliedOperation | None: ...
    async def record_operation(self, session: AsyncSession, op: AppliedOperation) -> None: ...
    async def replace_role_permissions(
        self, session: AsyncSession, team_id: str, role: str, permissions: Iterable[str], now: datetime
    ) -> None: ...
    async def assign(
        self, session: AsyncSession, team_id: str, customer_id: str, user_id: str, now: datetime
    ) -> None: ...
    async def unassign(self, session: AsyncSession, team_id: str, customer_id: str, user_id: str) -> None: ...


class EventOutbox(Protocol):
    """Messages staged in the caller's transaction and relayed to NATS after commit."""

    async def add(self, session: AsyncSession, subject: str, message: Message, msg_id: str) -> None: ...
    def notify(self) -> None: ...


class ChangeAnnouncer(Protocol):
    """Tells other replicas and AuthzClient caches of a committed change at once (best effort:
    the same notice is in the outbox). Never raises."""

    async def announce(self, team_id: str, revision: int, user_id: str) -> None: ...
