"""Automatic responses to security alerts: account holds (timed lock, second factor at the
next login), the responses applied per alert, and codes mailed for a login's second step.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_holds",
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
        sa.Column("lock_reason", sa.String(64), nullable=False),
        sa.Column("mfa_required_at", UtcDateTime(), nullable=True),
        sa.Column("mfa_reason", sa.String(64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_account_holds"),
    )
    op.create_table(
        "security_responses",
        sa.Column("alert_id", sa.String(40), nullable=False),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("applied_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "action", name="pk_security_responses"),
    )
    op.create_table(
        "mfa_mail_codes",
        sa.Column("challenge_hash", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["challenge_hash"],
            ["mfa_challenges.token_hash"],
            name="fk_mfa_mail_codes_challenge_hash_mfa_challenges",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("challenge_hash", name="pk_mfa_mail_codes"),
    )


def downgrade() -> None:
    op.drop_table("mfa_mail_codes")
    op.drop_table("security_responses")
    op.drop_table("account_holds")
