"""In-memory fakes of rbac's ports, and the use cases wired over them (no servers).

A fake transaction restores the store and the outbox when its block raises, as the SQL
adapters' transactions roll back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import FrozenClock
from services.rbac.assignments import Assignments
from services.rbac.changes import TeamChanges
from services.rbac.checks import Checks
from services.rbac.domain.team import AppliedOperation, RoleBinding, TeamAuthorization
from services.rbac.memberships import Memberships
from services.rbac.roles import Roles
from services.rbac.snapshots import Snapshots
from tests.unit.fake_ports import FakeOutbox, FakeTransactions, Rollback


class FakeRbacStore(Rollback):
    def __init__(self) -> None:
        self.members: dict[tuple[str, str], RoleBinding] = {}
        self.overrides: dict[str, dict[str, frozenset[str]]] = {}
        self.assignments: set[tuple[str, str, str]] = set()  # (team, customer, user)
        self.operations: dict[str, AppliedOperation] = {}
        self.revisions: dict[str, int] = {}

    async def lock_team(self, session: AsyncSession, team_id: str) -> int:
        return self.revisions.setdefault(team_id, 0)

    async def bump_revision(self, session: AsyncSession, team_id: str) -> int:
        self.revisions[team_id] += 1
        return self.revisions[team_id]

    async def all_revisions(self, session: AsyncSession) -> dict[str, int]:
        return dict(self.revisions)

    async def load_team(self, session: AsyncSession, team_id: str) -> TeamAuthorization:
        assigned: dict[str, set[str]] = {}
        for team, customer, user in self.assignments:
            if team == team_id:
                assigned.setdefault(user, set()).add(customer)
        return TeamAuthorization(
            team_id=team_id,
            revision=self.revisions.get(team_id, 0),
            members={u: b for (t, u), b in self.members.items() if t == team_id},
            overrides=dict(self.overrides.get(team_id, {})),
            assignments={u: frozenset(c) for u, c in assigned.items()},
        )

    async def overrides_for(
        self, session: AsyncSession, team_ids: Iterable[str]
    ) -> dict[str, dict[str, frozenset[str]]]:
        return {t: dict(self.overrides[t]) for t in team_ids if t in self.overrides}

    async def memberships_of_user(self, session: AsyncSession, user_id: str) -> list[RoleBinding]:
        return sorted((b for (_, u), b in self.members.items() if u == user_id), key=lambda b: b.joined_at)

    async def add_membership(self, session: AsyncSession, binding: RoleBinding) -> None:
        key = (binding.team_id, binding.user_id)
        if key in self.members:
            raise IntegrityError("insert", {}, Exception("duplicate membership"))
        self.members[key] = binding

    async def set_role(self, session: AsyncSession, team_id: str, user_id: str, role: str) -> None:
        b = self.members[(team_id, user_id)]
        self.members[(team_id, user_id)] = RoleBinding(team_id, user_id, role, b.joined_at)

    async def remove_membership(self, session: AsyncSession, team_id: str, user_id: str) -> None:
        self.members.pop((team_id, user_id), None)
        self.assignments = {a for a in self.assignments if not (a[0] == team_id and a[2] == user_id)}

    async def find_operation(self, session: AsyncSession, operation_id: str) -> AppliedOperation | None:
        return self.operations.get(operation_id)

    async def record_operation(self, session: AsyncSession, op: AppliedOperation) -> None:
        if op.operation_id in self.operations:
            raise IntegrityError("insert", {}, Exception("duplicate operation"))
        self.operations[op.operation_id] = op

    async def replace_role_permissions(
        self, session: AsyncSession, team_id: str, role: str, permissions: Iterable[str], now: datetime
    ) -> None:
        self.overrides.setdefault(team_id, {})[role] = frozenset(permissions)

    async def assign(self, session: AsyncSession, team_id: str, customer_id: str, user_id: str, now: datetime) -> None:
        self.assignments.add((team_id, customer_id, user_id))

    async def unassign(self, session: AsyncSession, team_id: str, customer_id: str, user_id: str) -> None:
        self.assignments.discard((team_id, customer_id, user_id))


class FakeRbacOutbox(FakeOutbox):
    def notices(self) -> list[rbac_pb2.AuthorizationChanged]:
        return [m for _, m in self.messages if isinstance(m, rbac_pb2.AuthorizationChanged)]


class FakeAnnouncer:
    def __init__(self) -> None:
        self.announced: list[tuple[str, int, str]] = []

    async def announce(self, team_id: str, revision: int, user_id: str) -> None:
        self.announced.append((team_id, revision, user_id))


@dataclass
class World:
    clock: FrozenClock
    store: FakeRbacStore
    outbox: FakeRbacOutbox
    announcer: FakeAnnouncer
    transactions: FakeTransactions
    snapshots: Snapshots
    checks: Checks
    memberships: Memberships
    roles: Roles
    assignments: Assignments


def world() -> World:
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    store, outbox, announcer = FakeRbacStore(), FakeRbacOutbox(), FakeAnnouncer()
    transactions = FakeTransactions(store, outbox)
    snapshots = Snapshots(transactions, store)
    changes = TeamChanges(
        transactions=transactions,
        store=store,
        outbox=outbox,
        audit=AuditTrail(outbox, source="rbac", clock=clock),
        announcer=announcer,
        snapshots=snapshots,
        clock=clock,
    )
    return World(
        clock=clock,
        store=store,
        outbox=outbox,
        announcer=announcer,
        transactions=transactions,
        snapshots=snapshots,
        checks=Checks(snapshots),
        memberships=Memberships(
            transactions=transactions, store=store, snapshots=snapshots, changes=changes, clock=clock
        ),
        roles=Roles(store=store, snapshots=snapshots, changes=changes, clock=clock),
        assignments=Assignments(store=store, snapshots=snapshots, changes=changes, clock=clock),
    )
