"""rbac: memberships, role permissions, customer assignments, operations, revisions, outbox

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
        "memberships",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("joined_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "user_id", name="pk_memberships"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "role_overrides",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "role", name="pk_role_overrides"),
    )
    op.create_table(
        "role_permissions",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("permission", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "role", "permission", name="pk_role_permissions"),
    )
    op.create_table(
        "customer_assignments",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("assigned_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "customer_id", "user_id", name="pk_customer_assignments"),
    )
    op.create_index("ix_customer_assignments_team_id_user_id", "customer_assignments", ["team_id", "user_id"])
    op.create_table(
        "applied_operations",
        sa.Column("operation_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("applied_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("operation_id", name="pk_applied_operations"),
    )
    op.create_table(
        "team_revisions",
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", name="pk_team_revisions"),
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
    op.drop_table("team_revisions")
    op.drop_table("applied_operations")
    op.drop_index("ix_customer_assignments_team_id_user_id", table_name="customer_assignments")
    op.drop_table("customer_assignments")
    op.drop_table("role_permissions")
    op.drop_table("role_overrides")
    op.drop_index("ix_memberships_user_id", table_name="memberships")
    op.drop_table("memberships")
