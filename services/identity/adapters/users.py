"""Users: profiles (`SqlUserStore`, never credentials) and the privileged `SqlCredentialStore`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from services.identity.adapters.sql_common import changed
from services.identity.adapters.tables import users
from services.identity.domain.model import Credentials, PendingSignup, User
from services.identity.ports import Tx

_PROFILE = select(
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.email_verified_at,
    users.c.totp_enabled_at,
    users.c.last_active_team_id,
    users.c.created_at,
)

# Built once: the hot reads reuse the statement and its cached compilation.
_BY_ID = _PROFILE.where(users.c.id == bindparam("user_id"))
_BY_EMAIL = _PROFILE.where(users.c.email_normalized == bindparam("email"))


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


class SqlUserStore:
    async def get(self, tx: Tx, user_id: str) -> User | None:
        row = (await tx.execute(_BY_ID, {"user_id": user_id})).first()
        return _user(row) if row else None

    async def by_email(self, tx: Tx, email_normalized: str) -> User | None:
        row = (await tx.execute(_BY_EMAIL, {"email": email_normalized})).first()
        return _user(row) if row else None

    async def email_taken(self, tx: Tx, email_normalized: str) -> bool:
        query = select(users.c.id).where(users.c.email_normalized == email_normalized)
        return (await tx.execute(query)).first() is not None

    async def create_verified(self, tx: Tx, *, user_id: str, signup: PendingSignup, now: datetime) -> User:
        await tx.execute(
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
        user = await self.get(tx, user_id)
        assert user is not None
        return user

    async def set_last_active_team(self, tx: Tx, user_id: str, team_id: str | None, now: datetime) -> bool:
        query = update(users).where(users.c.id == user_id).values(last_active_team_id=team_id, updated_at=now)
        return await changed(tx, query) > 0

    async def set_first_active_team(self, tx: Tx, user_id: str, team_id: str, now: datetime) -> None:
        await tx.execute(
            update(users)
            .where(users.c.id == user_id, users.c.last_active_team_id.is_(None))
            .values(last_active_team_id=team_id, updated_at=now)
        )


class SqlCredentialStore:
    """The one reader and writer of password hashes besides the MFA state (adapters/totp.py)."""

    async def by_email(self, tx: Tx, email_normalized: str) -> Credentials | None:
        query = select(users.c.id, users.c.password_hash).where(users.c.email_normalized == email_normalized)
        row = (await tx.execute(query)).first()
        return Credentials(user_id=row.id, password_hash=row.password_hash) if row else None

    async def rehash(self, tx: Tx, user_id: str, old: str, new: str, now: datetime) -> bool:
        return await self._write(tx, user_id, old, password_hash=new, updated_at=now)

    async def set_password(
        self, tx: Tx, user_id: str, password_hash: str, now: datetime, *, expected: str | None = None
    ) -> bool:
        values = {"password_hash": password_hash, "password_changed_at": now, "updated_at": now}
        return await self._write(tx, user_id, expected, **values)

    async def _write(self, tx: Tx, user_id: str, expected: str | None, **values: Any) -> bool:
        query = update(users).where(users.c.id == user_id)
        if expected is not None:
            query = query.where(users.c.password_hash == expected)  # unless it changed meanwhile
        return await changed(tx, query.values(**values)) == 1
