"""rbac's tables and the queries over them (SQLAlchemy Core, SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.db import UtcDateTime, dialect_insert, new_metadata, reading, transaction
from deelrx_kit.outbox import outbox_table
from services.rbac.domain.team import AppliedOperation, RoleBinding, TeamAuthorization

RoleOverrides = dict[str, dict[str, frozenset[str]]]

metadata = new_metadata()
outbox = outbox_table(metadata)

memberships = Table(
    "memberships",
    metadata,
    Column("team_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("joined_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("team_id", "user_id"),
    Index("ix_memberships_user_id", "user_id"),
)

# A role listed here has the permission rows below as its whole set (possibly empty);
# a role not listed keeps the default set of the catalogue.
role_overrides = Table(
    "role_overrides",
    metadata,
    Column("team_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("team_id", "role"),
)

role_permissions = Table(
    "role_permissions",
    metadata,
    Column("team_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("permission", String(64), nullable=False),
    PrimaryKeyConstraint("team_id", "role", "permission"),
)

customer_assignments = Table(
    "customer_assignments",
    metadata,
    Column("team_id", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("team_id", "customer_id", "user_id"),
    Index("ix_customer_assignments_team_id_user_id", "team_id", "user_id"),
)

# AddMember's idempotency record: what the operation applied, kept after the member leaves.
applied_operations = Table(
    "applied_operations",
    metadata,
    Column("operation_id", String(64), primary_key=True),
    Column("team_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

# One row per team; every change increments it in the change's own transaction. Taking
# this row first also serializes concurrent changes of one team on PostgreSQL.
team_revisions = Table(
    "team_revisions",
    metadata,
    Column("team_id", String(64), primary_key=True),
    Column("revision", BigInteger, nullable=False),
)


def _binding(row: object) -> RoleBinding:
    return RoleBinding(row.team_id, row.user_id, row.role, row.joined_at)  # type: ignore[attr-defined]


class RbacStore:
    """Queries run inside the caller's session; the use cases decide where transactions begin."""

    # -- revisions ------------------------------------------------------------------------
    async def lock_team(self, session: AsyncSession, team_id: str) -> int:
        """Create or touch the team's revision row (a row lock on PostgreSQL) and return it."""
        stmt = (
            dialect_insert(session, team_revisions)
            .values(team_id=team_id, revision=0)
            .on_conflict_do_update(
                index_elements=[team_revisions.c.team_id], set_={"revision": team_revisions.c.revision}
            )
            .returning(team_revisions.c.revision)
        )
        return int((await session.execute(stmt)).scalar_one())

    async def bump_revision(self, session: AsyncSession, team_id: str) -> int:
        stmt = (
            update(team_revisions)
            .where(team_revisions.c.team_id == team_id)
            .values(revision=team_revisions.c.revision + 1)
            .returning(team_revisions.c.revision)
        )
        return int((await session.execute(stmt)).scalar_one())

    async def revision(self, session: AsyncSession, team_id: str) -> int:
        value = await session.scalar(select(team_revisions.c.revision).where(team_revisions.c.team_id == team_id))
        return int(value or 0)

    async def all_revisions(self, session: AsyncSession) -> dict[str, int]:
        rows = await session.execute(select(team_revisions.c.team_id, team_revisions.c.revision))
        return {team_id: int(revision) for team_id, revision in rows}

    # -- whole-team reads -----------------------------------------------------------------
    async def load_team(self, session: AsyncSession, team_id: str) -> TeamAuthorization:
        # Revision first: under READ COMMITTED the rows read after it are at least as new,
        # so a snapshot never claims a revision newer than its data.
        revision = await self.revision(session, team_id)
        members = {
            row.user_id: _binding(row)
            for row in await session.execute(select(memberships).where(memberships.c.team_id == team_id))
        }
        overrides = (await self.overrides_for(session, [team_id])).get(team_id, {})
        assigned: dict[str, set[str]] = {}
        rows = await session.execute(
            select(customer_assignments.c.user_id, customer_assignments.c.customer_id).where(
                customer_assignments.c.team_id == team_id
            )
        )
        for user_id, customer_id in rows:
            assigned.setdefault(user_id, set()).add(customer_id)
        return TeamAuthorization(
            team_id=team_id,
            revision=revision,
            members=members,
            overrides=overrides,
            assignments={u: frozenset(c) for u, c in assigned.items()},
        )

    async def overrides_for(
        self, session: AsyncSession, team_ids: Iterable[str]
    ) -> dict[str, dict[str, frozenset[str]]]:
        ids = list(team_ids)
        if not ids:
            return {}
        found: dict[str, dict[str, set[str]]] = {}
        for row in await session.execute(select(role_overrides).where(role_overrides.c.team_id.in_(ids))):
            found.setdefault(row.team_id, {})[row.role] = set()
        for row in await session.execute(select(role_permissions).where(role_permissions.c.team_id.in_(ids))):
            found.setdefault(row.team_id, {}).setdefault(row.role, set()).add(row.permission)
        return {t: {r: frozenset(p) for r, p in roles.items()} for t, roles in found.items()}

    async def memberships_of_user(self, session: AsyncSession, user_id: str) -> list[RoleBinding]:
        rows = await session.execute(
            select(memberships).where(memberships.c.user_id == user_id).order_by(memberships.c.joined_at)
        )
        return [_binding(r) for r in rows]

    # -- memberships ----------------------------------------------------------------------
    async def add_membership(self, session: AsyncSession, binding: RoleBinding) -> None:
        await session.execute(
            insert(memberships).values(
                team_id=binding.team_id, user_id=binding.user_id, role=binding.role, joined_at=binding.joined_at
            )
        )

    async def set_role(self, session: AsyncSession, team_id: str, user_id: str, role: str) -> None:
        await session.execute(
            update(memberships)
            .where(and_(memberships.c.team_id == team_id, memberships.c.user_id == user_id))
            .values(role=role)
        )

    async def remove_membership(self, session: AsyncSession, team_id: str, user_id: str) -> None:
        await session.execute(
            delete(memberships).where(and_(memberships.c.team_id == team_id, memberships.c.user_id == user_id))
        )
        await session.execute(
            delete(customer_assignments).where(
                and_(customer_assignments.c.team_id == team_id, customer_assignments.c.user_id == user_id)
            )
        )

    async def find_operation(self, session: AsyncSession, operation_id: str) -> AppliedOperation | None:
        row = (
            await session.execute(select(applied_operations).where(applied_operations.c.operation_id == operation_id))
        ).first()
        if row is None:
            return None
        return AppliedOperation(row.operation_id, row.team_id, row.user_id, row.role, row.applied_at)

    async def record_operation(self, session: AsyncSession, op: AppliedOperation) -> None:
        await session.execute(
            insert(applied_operations).values(
                operation_id=op.operation_id,
                team_id=op.team_id,
                user_id=op.user_id,
                role=op.role,
                applied_at=op.applied_at,
            )
        )

    # -- role permissions -----------------------------------------------------------------
    async def replace_role_permissions(
        self, session: AsyncSession, team_id: str, role: str, permissions: Iterable[str], now: datetime
    ) -> None:
        await session.execute(
            delete(role_permissions).where(and_(role_permissions.c.team_id == team_id, role_permissions.c.role == role))
        )
        await session.execute(
            delete(role_overrides).where(and_(role_overrides.c.team_id == team_id, role_overrides.c.role == role))
        )
        await session.execute(insert(role_overrides).values(team_id=team_id, role=role, updated_at=now))
        rows = [{"team_id": team_id, "role": role, "permission": p} for p in sorted(permissions)]
        if rows:
            await session.execute(insert(role_permissions), rows)

    # -- customer assignments -------------------------------------------------------------
    async def assign(self, session: AsyncSession, team_id: str, customer_id: str, user_id: str, now: datetime) -> None:
        await session.execute(
            insert(customer_assignments).values(
                team_id=team_id, customer_id=customer_id, user_id=user_id, assigned_at=now
            )
        )

    async def unassign(self, session: AsyncSession, team_id: str, customer_id: str, user_id: str) -> None:
        await session.execute(
            delete(customer_assignments).where(
                and_(
                    customer_assignments.c.team_id == team_id,
                    customer_assignments.c.customer_id == customer_id,
                    customer_assignments.c.user_id == user_id,
                )
            )
        )


class SqlTransactions:
    """The `Transactions` port over the service's engine (`deelrx_kit.db`)."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self.db = db

    def writing(self) -> AbstractAsyncContextManager[AsyncSession]:
        return transaction(self.db)

    def reading(self) -> AbstractAsyncContextManager[AsyncSession]:
        return reading(self.db)
