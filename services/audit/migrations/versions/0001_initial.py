"""Audit events in hash chains, chain heads, alerts.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
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
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("chain_key", "seq", name="uq_audit_events_chain_seq"),
    )
    op.create_index("ix_audit_events_team_time", "audit_events", ["team_id", "time", "id"])
    op.create_index("ix_audit_events_actor_time", "audit_events", ["actor_user_id", "time", "id"])
    op.create_table(
        "chain_heads",
        sa.Column("chain_key", sa.String(160), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain_key", name="pk_chain_heads"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user_ids", sa.Text(), nullable=False),
        sa.Column("event_ids", sa.Text(), nullable=False),
        sa.Column("stored_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_team_time", "alerts", ["team_id", "time", "id"])
    op.create_table(
        "alert_users",
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "user_id", name="pk_alert_users"),
    )
    op.create_index("ix_alert_users_user", "alert_users", ["user_id"])


def downgrade() -> None:
    op.drop_table("alert_users")
    op.drop_table("alerts")
    op.drop_table("chain_heads")
    op.drop_table("audit_events")
