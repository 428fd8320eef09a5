"""Indexes the purges of expired rows search by.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_pending_signups_expires_at", "pending_signups", ["expires_at"]),
    ("ix_login_clients_updated_at", "login_clients", ["updated_at"]),
    ("ix_login_accounts_updated_at", "login_accounts", ["updated_at"]),
    ("ix_mail_throttle_last_sent_at", "mail_throttle", ["last_sent_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
