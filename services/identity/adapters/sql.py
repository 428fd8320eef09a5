"""Identity tables (SQLAlchemy Core) and the repositories that read and write them.

The normal repositories never select password hashes or TOTP secrets; `CredentialRepository`
is the one privileged reader (the login path).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import UtcDateTime, dialect_insert, new_metadata
from deelrx_kit.ids import ulid
from deelrx_kit.keyring import Keyring, KeyringError
from deelrx_kit.outbox import outbox_table
from services.identity.domain.mail import OutgoingMail
from services.identity.domain.model import Credentials, PendingSignup, Team, TeamSettings, User

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
    # accepted time step refuses replays inside the window. Recovery codes and the other
    # account-security tables are in adapters/security_sql.py.
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


def _insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING on either backend."""
    return dialect_insert(session, table).values(**values).on_conflict_do_nothing()


# -- users ----------------------------------------------------------------------------------
_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.email_verified_at,
    users.c.totp_enabled_at,
    users.c.last_active_team_id,
    users.c.created_at,
)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        email_verified=row.email_verified_at is not None,
        mfa_enabled=row.totp_enabled_at is not None,
        last_active_team_id=row.last_active_team_id,
        created_at=row.created_at,
    )


class UserRepository:
    """Profile reads and writes; never returns credentials."""

    async def get(self, session: AsyncSession, user_id: str) -> User | None:
        row = (await session.execute(select(*_USER_COLUMNS).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def by_email(self, session: AsyncSession, email_normalized: str) -> User | None:
        row = (
            await session.execute(select(*_USER_COLUMNS).where(users.c.email_normalized == email_normalized))
        ).first()
        return _user(row) if row else None

    async def email_taken(self, session: AsyncSession, email_normalized: str) -> bool:
        query = select(users.c.id).where(users.c.email_normalized == email_normalized)
        return (await session.execute(query)).first() is not None

    async def create_verified(
        self, session: AsyncSession, *, user_id: str, signup: PendingSignup, now: datetime
    ) -> User:
        await session.execute(
            insert(users).values(
                id=user_id,
                email=signup.email,
                email_normalized=signup.email_normalized,
                name=signup.name,
                password_hash=signup.password_hash,
                password_changed_at=now,
                email_verified_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        user = await self.get(session, user_id)
        assert user is not None
        return user

    async def set_last_active_team(
        self, session: AsyncSession, user_id: str, team_id: str | None, now: datetime
    ) -> bool:
        result = await session.execute(
            update(users).where(users.c.id == user_id).values(last_active_team_id=team_id, updated_at=now)
        )
        return bool(result.rowcount)

    async def set_first_active_team(self, session: AsyncSession, user_id: str, team_id: str, now: datetime) -> None:
        await session.execute(
            update(users)
            .where(users.c.id == user_id, users.c.last_active_team_id.is_(None))
            .values(last_active_team_id=team_id, updated_at=now)
        )


class CredentialRepository:
    """Privileged reads: password hashes (and, later, TOTP secrets)."""

    async def by_email(self, session: AsyncSession, email_normalized: str) -> Credentials | None:
        row = (
            await session.execute(
                select(users.c.id, users.c.password_hash).where(users.c.email_normalized == email_normalized)
            )
        ).first()
        return Credentials(user_id=row.id, password_hash=row.password_hash) if row else None

    async def replace_hash(self, session: AsyncSession, user_id: str, old: str, new: str, now: datetime) -> bool:
        """Rehash with new parameters, unless the password changed meanwhile."""
        result = await session.execute(
            update(users)
            .where(users.c.id == user_id, users.c.password_hash == old)
            .values(password_hash=new, updated_at=now)
        )
        return bool(result.rowcount)


# -- sign-ups -------------------------------------------------------------------------------
def _signup(row: Any) -> PendingSignup:
    return PendingSignup(
        id=row.id,
        email=row.email,
        email_normalized=row.email_normalized,
        name=row.name,
        password_hash=row.password_hash,
        expires_at=row.expires_at,
    )


class PendingSignupRepository:
    async def add(
        self,
        session: AsyncSession,
        *,
        signup_id: str,
        email: str,
        email_normalized: str,
        name: str,
        password_hash: str,
        token_hash: str,
        expires_at: datetime,
        now: datetime,
    ) -> None:
        await session.execute(
            insert(pending_signups).values(
                id=signup_id,
                email=email,
                email_normalized=email_normalized,
                name=name,
                password_hash=password_hash,
                token_hash=token_hash,
                expires_at=expires_at,
                created_at=now,
            )
        )

    async def by_token(self, session: AsyncSession, token_hash: str) -> PendingSignup | None:
        row = (await session.execute(select(pending_signups).where(pending_signups.c.token_hash == token_hash))).first()
        return _signup(row) if row else None

    async def lock_address(self, session: AsyncSession, email_normalized: str) -> None:
        """Lock every sign-up of the address in one order, so verifications of one address
        queue instead of deadlocking (PostgreSQL; SQLite writers are serialized anyway)."""
        await session.execute(
            select(pending_signups.c.id)
            .where(pending_signups.c.email_normalized == email_normalized)
            .order_by(pending_signups.c.id)
            .with_for_update()
        )

    async def claim(self, session: AsyncSession, signup_id: str, token_hash: str) -> bool:
        """Use a sign-up's link: exactly one concurrent caller gets True."""
        result = await session.execute(
            delete(pending_signups).where(pending_signups.c.id == signup_id, pending_signups.c.token_hash == token_hash)
        )
        return result.rowcount == 1

    async def latest_live(self, session: AsyncSession, email_normalized: str, now: datetime) -> PendingSignup | None:
        row = (
            await session.execute(
                select(pending_signups)
                .where(pending_signups.c.email_normalized == email_normalized, pending_signups.c.expires_at > now)
                .order_by(pending_signups.c.created_at.desc(), pending_signups.c.id.desc())
                .limit(1)
            )
        ).first()
        return _signup(row) if row else None

    async def count_live(self, session: AsyncSession, email_normalized: str, now: datetime) -> int:
        query = select(pending_signups.c.id).where(
            pending_signups.c.email_normalized == email_normalized, pending_signups.c.expires_at > now
        )
        return len((await session.execute(query.limit(2))).all())

    async def rotate_token(self, session: AsyncSession, signup_id: str, new_hash: str, expires_at: datetime) -> bool:
        result = await session.execute(
            update(pending_signups)
            .where(pending_signups.c.id == signup_id)
            .values(token_hash=new_hash, expires_at=expires_at)
        )
        return result.rowcount == 1

    async def delete_for_address(self, session: AsyncSession, email_normalized: str) -> None:
        await session.execute(delete(pending_signups).where(pending_signups.c.email_normalized == email_normalized))

    async def delete_expired(self, session: AsyncSession, now: datetime, email_normalized: str | None = None) -> None:
        query = delete(pending_signups).where(pending_signups.c.expires_at <= now)
        if email_normalized is not None:
            query = query.where(pending_signups.c.email_normalized == email_normalized)
        await session.execute(query)


# -- teams ----------------------------------------------------------------------------------
def _team(row: Any) -> Team:
    return Team(
        id=row.id,
        name=row.name,
        plan=row.plan,
        billing_email=row.billing_email,
        created_at=row.created_at,
        settings=TeamSettings(
            session_idle_timeout_minutes=row.session_idle_timeout_minutes,
            session_absolute_timeout_hours=row.session_absolute_timeout_hours,
            mfa_required=row.mfa_required,
        ),
    )


class TeamRepository:
    async def add(self, session: AsyncSession, team: Team, created_by: str) -> None:
        await session.execute(
            insert(teams).values(
                id=team.id,
                name=team.name,
                plan=team.plan,
                billing_email=team.billing_email,
                session_idle_timeout_minutes=team.settings.session_idle_timeout_minutes,
                session_absolute_timeout_hours=team.settings.session_absolute_timeout_hours,
                mfa_required=team.settings.mfa_required,
                created_by=created_by,
                created_at=team.created_at,
                updated_at=team.created_at,
            )
        )

    async def get(self, session: AsyncSession, team_id: str) -> Team | None:
        row = (await session.execute(select(teams).where(teams.c.id == team_id))).first()
        return _team(row) if row else None

    async def many(self, session: AsyncSession, team_ids: Sequence[str]) -> list[Team]:
        if not team_ids:
            return []
        rows = (await session.execute(select(teams).where(teams.c.id.in_(list(team_ids))))).all()
        found = {row.id: _team(row) for row in rows}
        return [found[i] for i in dict.fromkeys(team_ids) if i in found]


# -- failed-login counters -----------------------------------------------------------------
class LoginThrottleRepository:
    """Counters changed only by conditional UPDATEs, so concurrent attempts stay within limits."""

    async def reserve_account(self, session: AsyncSession, key: str, limit: int, now: datetime) -> bool:
        await session.execute(
            _insert_ignore(session, login_accounts, {"account_key": key, "failures": 0, "updated_at": now})
        )
        result = await session.execute(
            update(login_accounts)
            .where(login_accounts.c.account_key == key, login_accounts.c.failures < limit)
            .values(failures=login_accounts.c.failures + 1, updated_at=now)
        )
        return result.rowcount == 1

    async def release_account(self, session: AsyncSession, key: str, now: datetime) -> None:
        await session.execute(
            update(login_accounts)
            .where(login_accounts.c.account_key == key, login_accounts.c.failures > 0)
            .values(failures=login_accounts.c.failures - 1, updated_at=now)
        )

    async def reserve_client(
        self, session: AsyncSession, key: str, client: str, limit: int, lock: timedelta, now: datetime
    ) -> bool:
        """Count one failure for the client; the `limit`-th one starts the lock."""
        await session.execute(
            _insert_ignore(
                session, login_clients, {"account_key": key, "client": client, "failures": 0, "updated_at": now}
            )
        )
        c = login_clients.c
        lock_over = and_(c.locked_until.is_not(None), c.locked_until <= now)
        result = await session.execute(
            update(login_clients)
            .where(c.account_key == key, c.client == client, or_(c.locked_until.is_(None), c.locked_until <= now))
            .values(
                failures=sql_case((lock_over, 1), else_=c.failures + 1),
                locked_until=sql_case(
                    (lock_over, null()),
                    (c.failures + 1 >= limit, now + lock),
                    else_=c.locked_until,
                ),
                updated_at=now,
            )
        )
        return result.rowcount == 1

    async def client_locked_until(self, session: AsyncSession, key: str, client: str) -> datetime | None:
        query = select(login_clients.c.locked_until).where(
            login_clients.c.account_key == key, login_clients.c.client == client
        )
        row = (await session.execute(query)).first()
        return row.locked_until if row else None

    async def forgive_client(self, session: AsyncSession, key: str, client: str, now: datetime) -> None:
        await session.execute(
            update(login_clients)
            .where(login_clients.c.account_key == key, login_clients.c.client == client)
            .values(failures=0, locked_until=None, updated_at=now)
        )

    async def reset_account(self, session: AsyncSession, key: str, now: datetime) -> None:
        await session.execute(
            update(login_accounts).where(login_accounts.c.account_key == key).values(failures=0, updated_at=now)
        )


class MailThrottleRepository:
    async def claim(
        self, session: AsyncSession, purpose: str, address_key: str, interval: timedelta, now: datetime
    ) -> bool:
        """True when no mail of this purpose went to the address within `interval`."""
        inserted = await session.execute(
            _insert_ignore(
                session, mail_throttle, {"purpose": purpose, "address_key": address_key, "last_sent_at": now}
            )
        )
        if inserted.rowcount == 1:
            return True
        result = await session.execute(
            update(mail_throttle)
            .where(
                mail_throttle.c.purpose == purpose,
                mail_throttle.c.address_key == address_key,
                mail_throttle.c.last_sent_at <= now - interval,
            )
            .values(last_sent_at=now)
        )
        return result.rowcount == 1


# -- mail outbox ----------------------------------------------------------------------------
_SEALED = "sealed:"


class MailOutboxRepository:
    """With a keyring, bodies (which carry one-time links) are stored sealed, bound to the
    mail's id, and opened only by the relay just before delivery."""

    def __init__(self, keyring: Keyring | None = None) -> None:
        self.keyring = keyring

    def _seal(self, mail_id: str, text: str) -> str:
        if self.keyring is None:
            return text
        blob = self.keyring.seal(text.encode(), b"mail:" + mail_id.encode())
        return _SEALED + base64.b64encode(blob).decode("ascii")

    def body_of(self, row: Any) -> str:
        stored: str = row.body_text
        if not stored.startswith(_SEALED):
            return stored
        if self.keyring is None:
            raise KeyringError("a sealed mail needs the keyring")
        blob = base64.b64decode(stored[len(_SEALED) :])
        return self.keyring.open(blob, b"mail:" + str(row.id).encode()).decode()

    async def stage(self, session: AsyncSession, mail: OutgoingMail, now: datetime) -> str:
        mail_id = ulid()
        await session.execute(
            insert(mail_outbox).values(
                id=mail_id,
                recipient=mail.to,
                subject=mail.subject,
                body_text=self._seal(mail_id, mail.text),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
        return mail_id

    async def due(self, session: AsyncSession, now: datetime, limit: int) -> list[Any]:
        query = (
            select(mail_outbox)
            .where(mail_outbox.c.next_attempt_at <= now)
            .order_by(mail_outbox.c.next_attempt_at, mail_outbox.c.id)
            .limit(limit)
        )
        return list((await session.execute(query)).all())

    async def lease(self, session: AsyncSession, mail_id: str, seen_at: datetime, until: datetime) -> bool:
        """Take a mail for delivery; another relay that saw the same row loses."""
        result = await session.execute(
            update(mail_outbox)
            .where(mail_outbox.c.id == mail_id, mail_outbox.c.next_attempt_at == seen_at)
            .values(next_attempt_at=until)
        )
        return result.rowcount == 1

    async def delivered(self, session: AsyncSession, mail_id: str) -> None:
        await session.execute(delete(mail_outbox).where(mail_outbox.c.id == mail_id))

    async def failed(self, session: AsyncSession, mail_id: str, retry_at: datetime, error: str) -> None:
        await session.execute(
            update(mail_outbox)
            .where(mail_outbox.c.id == mail_id)
            .values(attempts=mail_outbox.c.attempts + 1, next_attempt_at=retry_at, last_error=error[:500])
        )

    async def count(self, session: AsyncSession) -> int:
        return len((await session.execute(select(mail_outbox.c.id))).all())


# The account-security tables live in their own module; importing it here registers them on
# `metadata`, which migrations and schema checks read from this module.
from services.identity.adapters import account_holds_sql as _account_holds_sql  # noqa: E402, F401
from services.identity.adapters import security_sql as _security_sql  # noqa: E402, F401
