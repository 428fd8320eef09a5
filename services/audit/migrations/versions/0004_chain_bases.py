"""Where a chain starts after its oldest events were archived and deleted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_bases",
        sa.Column("chain_key", sa.String(160), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("archived_at", UtcDateTime(), nullable=False),
        sa.Column("archive", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("chain_key", name="pk_chain_bases"),
    )


def downgrade() -> None:
    op.drop_table("chain_bases")
