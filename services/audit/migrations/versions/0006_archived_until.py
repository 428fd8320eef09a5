"""The newest event time archived from each chain: retention trims the id rows of archived
events, and the store refuses an event of a chain at or before that time instead.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from deelrx_kit.db import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chain_bases") as batch:
        batch.add_column(sa.Column("archived_until", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chain_bases") as batch:
        batch.drop_column("archived_until")
