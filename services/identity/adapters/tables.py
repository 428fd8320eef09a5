"""Identity's tables (SQLAlchemy Core). Migrations and the schema checks read `metadata`.

Repositories (one module each beside this one) select only the columns they hand out: the
normal ones never read password hashes or TOTP secrets.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

from deelrx_kit.db import UtcDateTime, new_metadata
from deelrx_kit.outbox import outbox_table

metadata = new_metadata()
outbox = outbox_table(metadata)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False),
    # Lower-cased address: the uniqueness and lookup key (addresses compare case-insensitively).
    Column("email_normalized", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("password_changed_at", UtcDateTime, nullable=False),
    Column("email_verified_at", UtcDateTime, nullable=True),
    Column("last_active_team_id", String(40), nullable=True),
    # TOTP: the secret sealed by the keyring (pending until totp_enabled_at is set); the last
    # accepted time step refuses replays inside the window. Recovery codes are their own table.
    Column("totp_secret_encrypted", LargeBinary, nullable=True),
    Column("totp_enabled_at", UtcDateTime, nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

pending_signups = Table(
    "pending_signups",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_normalized", String(320), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

teams = Table(
    "teams",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("billing_email", String(320), nullable=False, default=""),
    Column("session_idle_timeout_minutes", Integer, nullable=False),
    Column("session_absolute_timeout_hours", Integer, nullable=False),
    Column("mfa_required", Boolean, nullable=False),
    Column("created_by", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Invitations to a team: the token is stored only as SHA-256; single use (accepted_*), revocable.
invitations = Table(
    "invitations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("team_id", String(40), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_normalized", String(320), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("invited_by", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("accepted_at", UtcDateTime, nullable=True),
    Column("accepted_by", String(40), nullable=True),
)
Index("ix_invitations_team_id_email_normalized", invitations.c.team_id, invitations.c.email_normalized)

# Failed-login counters, keyed by a keyed hash of the normalized email (works for unknown
# addresses too) and the client IP.
login_clients = Table(
    "login_clients",
    metadata,
    Column("account_key", String(64), primary_key=True),
    Column("client", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

login_accounts = Table(
    "login_accounts",
    metadata,
    Column("account_key", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

mail_throttle = Table(
    "mail_throttle",
    metadata,
    Column("purpose", String(32), primary_key=True),
    Column("address_key", String(64), primary_key=True),
    Column("last_sent_at", UtcDateTime, nullable=False),
)

# Mails staged in the business transaction, delivered by the relay, deleted once sent.
# The body (with its link) sits here until delivery; the table is as sensitive as the mail.
mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("recipient", String(320), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("body_text", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", String(500), nullable=True),
)
Index("ix_mail_outbox_next_attempt_at", mail_outbox.c.next_attempt_at)
# What the purges (services/identity/purge.py) search by.
Index("ix_pending_signups_expires_at", pending_signups.c.expires_at)
Index("ix_login_clients_updated_at", login_clients.c.updated_at)
Index("ix_login_accounts_updated_at", login_accounts.c.updated_at)
Index("ix_mail_throttle_last_sent_at", mail_throttle.c.last_sent_at)

# One live reset token per user: a newer one replaces the row, a password change deletes it.
password_resets = Table(
    "password_resets",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# The state between the password step and the second factor of a login.
mfa_challenges = Table(
    "mfa_challenges",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("auth_time", UtcDateTime, nullable=False),
    Column("token_delivery", String(8), nullable=False),
    # The lockout client of the password step: the IP, or "device:<id>" for a device cookie.
    Column("client", String(64), nullable=False),
    Column("failures", Integer, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("selector", String(16), nullable=False),
    Column("code_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)
Index("ix_recovery_codes_user_selector", recovery_codes.c.user_id, recovery_codes.c.selector)

# -- automatic responses to security alerts (adapters/account_holds.py) ------------------------
# One row per account: "user:<id>", or "subject:<keyed hash>" for an identifier that matches
# no account (so a held unknown address answers like a held real one).
account_holds = Table(
    "account_holds",
    metadata,
    Column("account", String(100), primary_key=True),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("lock_reason", String(64), nullable=False, default=""),
    Column("mfa_required_at", UtcDateTime, nullable=True),
    Column("mfa_reason", String(64), nullable=False, default=""),
    Column("updated_at", UtcDateTime, nullable=False),
)

# (alert, action) pairs applied: the idempotency of every response.
security_responses = Table(
    "security_responses",
    metadata,
    Column("alert_id", String(40), primary_key=True),
    Column("action", String(80), primary_key=True),
    Column("applied_at", UtcDateTime, nullable=False),
)

# The code mailed for a login challenge of a user without TOTP (keyed hash, never the code).
mfa_mail_codes = Table(
    "mfa_mail_codes",
    metadata,
    Column(
        "challenge_hash",
        String(64),
        ForeignKey(mfa_challenges.c.token_hash, ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("code_hash", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)
