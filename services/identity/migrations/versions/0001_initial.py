"""Initial identity schema: users, recovery codes, pending sign-ups, teams, login counters,
mail throttle and outbox, audit outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_normalized", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("password_changed_at", UtcDateTime(), nullable=False),
        sa.Column("email_verified_at", UtcDateTime(), nullable=True),
        sa.Column("last_active_team_id", sa.String(40), nullable=True),
        sa.Column("totp_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("totp_enabled_at", UtcDateTime(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email_normalized", name="uq_users_email_normalized"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "code_hash", name="pk_recovery_codes"),
    )
    op.create_table(
        "pending_signups",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_normalized", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_signups"),
        sa.UniqueConstraint("token_hash", name="uq_pending_signups_token_hash"),
    )
    op.create_index("ix_pending_signups_email_normalized", "pending_signups", ["email_normalized"])
    op.create_table(
        "teams",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("billing_email", sa.String(320), nullable=False),
        sa.Column("session_idle_timeout_minutes", sa.Integer(), nullable=False),
        sa.Column("session_absolute_timeout_hours", sa.Integer(), nullable=False),
        sa.Column("mfa_required", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
    )
    op.create_table(
        "login_clients",
        sa.Column("account_key", sa.String(64), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_key", "client", name="pk_login_clients"),
    )
    op.create_table(
        "login_accounts",
        sa.Column("account_key", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_key", name="pk_login_accounts"),
    )
    op.create_table(
        "mail_throttle",
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("address_key", sa.String(64), nullable=False),
        sa.Column("last_sent_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("purpose", "address_key", name="pk_mail_throttle"),
    )
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
    )
    op.create_index("ix_mail_outbox_next_attempt_at", "mail_outbox", ["next_attempt_at"])
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
    for table in (
        "outbox",
        "mail_outbox",
        "mail_throttle",
        "login_accounts",
        "login_clients",
        "teams",
        "pending_signups",
        "recovery_codes",
        "users",
    ):
        op.drop_table(table)
