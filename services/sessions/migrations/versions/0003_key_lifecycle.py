"""Signing-key lifecycle: published before signing, withdrawn on emergency, one rotator at a time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.add_column(sa.Column("activated_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("withdrawn_at", UtcDateTime(), nullable=True))
    # Keys that signed before this revision signed since they were created.
    op.execute("UPDATE signing_keys SET activated_at = created_at WHERE activated_at IS NULL")
    op.create_table(
        "signing_key_lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("ran_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signing_key_lock"),
    )


def downgrade() -> None:
    op.drop_table("signing_key_lock")
    with op.batch_alter_table("signing_keys") as batch:
        batch.drop_column("withdrawn_at")
        batch.drop_column("activated_at")
