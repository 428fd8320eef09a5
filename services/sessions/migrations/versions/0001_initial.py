"""Sessions, refresh tokens, devices, signing keys and the outbox.

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
        "sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("team_id", sa.String(40), nullable=False),
        sa.Column("family_id", sa.String(40), nullable=False),
        sa.Column("device_browser", sa.String(100), nullable=False),
        sa.Column("device_os", sa.String(100), nullable=False),
        sa.Column("device_type", sa.String(16), nullable=False),
        sa.Column("device_label", sa.String(210), nullable=False),
        sa.Column("device_fingerprint", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("idle_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("idle_expires_at", UtcDateTime(), nullable=False),
        sa.Column("amr", sa.String(255), nullable=False),
        sa.Column("auth_time", UtcDateTime(), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("revoke_reason", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("family_id", name="uq_sessions_family_id"),
    )
    op.create_index("ix_sessions_user_created", "sessions", ["user_id", "created_at"])
    op.create_index("ix_sessions_revoked_at", "sessions", ["revoked_at"])

    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("rotated_at", UtcDateTime(), nullable=True),
        sa.Column("successor_hash", sa.String(64), nullable=True),
        sa.Column("successor_sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_refresh_tokens"),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_rotated_at", "refresh_tokens", ["rotated_at"])

    op.create_table(
        "devices",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("browser", sa.String(100), nullable=False),
        sa.Column("os", sa.String(100), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("label", sa.String(210), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "fingerprint", name="pk_devices"),
    )

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(40), nullable=False),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retired_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
        sa.UniqueConstraint("active_slot", name="uq_signing_keys_active_slot"),
    )

    op.create_table(
        "outbox",
        sa.Column("seq", sa.String(26), nullable=False),
        sa.Column("msg_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("signing_keys")
    op.drop_table("devices")
    op.drop_index("ix_refresh_tokens_rotated_at", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index("ix_sessions_revoked_at", table_name="sessions")
    op.drop_index("ix_sessions_user_created", table_name="sessions")
    op.drop_table("sessions")
