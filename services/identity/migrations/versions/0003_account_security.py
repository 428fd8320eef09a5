"""Account security: password reset tokens, MFA login challenges, recovery codes with keyed
selectors and argon2id hashes (replacing the unused placeholder table).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("recovery_codes")
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("selector", sa.String(16), nullable=False),
        sa.Column("code_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_recovery_codes"),
    )
    op.create_index("ix_recovery_codes_user_selector", "recovery_codes", ["user_id", "selector"])
    op.create_table(
        "password_resets",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_password_resets_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name="pk_password_resets"),
        sa.UniqueConstraint("token_hash", name="uq_password_resets_token_hash"),
    )
    op.create_table(
        "mfa_challenges",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("auth_time", UtcDateTime(), nullable=False),
        sa.Column("token_delivery", sa.String(8), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_mfa_challenges_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_mfa_challenges"),
    )
    op.create_index("ix_mfa_challenges_user_id", "mfa_challenges", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_mfa_challenges_user_id", "mfa_challenges")
    op.drop_table("mfa_challenges")
    op.drop_table("password_resets")
    op.drop_index("ix_recovery_codes_user_selector", "recovery_codes")
    op.drop_table("recovery_codes")
    op.create_table(
        "recovery_codes",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "code_hash", name="pk_recovery_codes"),
    )
