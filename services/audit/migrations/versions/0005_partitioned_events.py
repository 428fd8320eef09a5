"""Events partitioned by month on PostgreSQL; event ids and chain positions kept unique in
their own table; partition leases and replica heartbeats for sharing the AUDIT stream.

On PostgreSQL `audit_events` becomes a table partitioned by range of `time`, one partition
per month (the months of the stored events, the current and the next month; the service
creates later ones ahead of time) and a default partition for times outside them. Its primary
key holds the partition key, so uniqueness of an event id and of a chain position moves to
`audit_event_ids`. SQLite gets the same columns in a plain table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id, chain_key, seq, prev_hash, hash, stored_at, time, type, team_id, actor_user_id, actor_ip, "
    "actor_user_agent, target_type, target_id, outcome, details, source, request_id, subject_hash, session_id"
)


def _month_start(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _months(first: datetime, last: datetime) -> list[datetime]:
    out, month = [], _month_start(first)
    while month <= last:
        out.append(month)
        month = _next_month(month)
    return out


def _event_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("chain_key", sa.String(160), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("stored_at", UtcDateTime(), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("actor_user_id", sa.String(64), nullable=False),
        sa.Column("actor_ip", sa.String(64), nullable=False),
        sa.Column("actor_user_agent", sa.String(512), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("subject_hash", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    # Index names are global (per schema): the old table's go before the new table takes them.
    op.drop_index("ix_audit_events_team_time", table_name="audit_events")
    op.drop_index("ix_audit_events_actor_time", table_name="audit_events")
    op.rename_table("audit_events", "audit_events_unpartitioned")
    if postgres:
        op.execute("ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT pk_audit_events TO pk_audit_events_old")
        op.execute(
            "ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT uq_audit_events_chain_seq TO uq_audit_events_old"
        )
    op.create_table(
        "audit_events",
        *_event_columns(),
        sa.PrimaryKeyConstraint("id", "time", name="pk_audit_events"),
        postgresql_partition_by="RANGE (time)",
    )
    op.create_index("ix_audit_events_chain_seq", "audit_events", ["chain_key", "seq"])
    op.create_index("ix_audit_events_team_time", "audit_events", ["team_id", "time", "id"])
    op.create_index("ix_audit_events_actor_time", "audit_events", ["actor_user_id", "time", "id"])
    if postgres:
        now = datetime.now(UTC)
        first, last = bind.execute(sa.text("SELECT min(time), max(time) FROM audit_events_unpartitioned")).one()
        first = min(first or now, now)
        last = max(last or now, _next_month(_month_start(now)))
        for month in _months(first, last):
            name = f"audit_events_{month:%Y_%m}"
            op.execute(
                f"CREATE TABLE {name} PARTITION OF audit_events "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next_month(month).isoformat()}')"
            )
        # Times outside every month created (a producer's clock far off): kept, not refused.
        op.execute("CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT")
    # COLUMNS is the constant above, no input.
    op.execute(f"INSERT INTO audit_events ({COLUMNS}) SELECT {COLUMNS} FROM audit_events_unpartitioned")  # noqa: S608
    op.create_table(
        "audit_event_ids",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("chain_key", sa.String(160), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event_ids"),
        sa.UniqueConstraint("chain_key", "seq", name="uq_audit_event_ids_chain_seq"),
    )
    op.execute(
        "INSERT INTO audit_event_ids (id, chain_key, seq) SELECT id, chain_key, seq FROM audit_events_unpartitioned"
    )
    op.drop_table("audit_events_unpartitioned")
    op.create_table(
        "audit_partition_leases",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("partition", name="pk_audit_partition_leases"),
    )
    op.create_table(
        "audit_replicas",
        sa.Column("replica_id", sa.String(64), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("replica_id", name="pk_audit_replicas"),
    )


def downgrade() -> None:
    raise NotImplementedError("partitioned audit events are not converted back")
