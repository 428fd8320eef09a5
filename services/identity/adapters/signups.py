"""Pending sign-ups: the account-to-be and the SHA-256 of its link's token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from services.identity.adapters.sql_common import changed
from services.identity.adapters.tables import pending_signups
from services.identity.domain.model import PendingSignup
from services.identity.ports import Tx

t = pending_signups.c


def _signup(row: Any) -> PendingSignup:
    return PendingSignup(
        id=row.id,
        email=row.email,
        email_normalized=row.email_normalized,
        name=row.name,
        password_hash=row.password_hash,
        expires_at=row.expires_at,
    )


def _live(email_normalized: str, now: datetime) -> Any:
    return select(pending_signups).where(t.email_normalized == email_normalized, t.expires_at > now)


class SqlPendingSignupStore:
    async def add(
        self,
        tx: Tx,
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
        await tx.execute(
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

    async def keep_newest(self, tx: Tx, email_normalized: str, count: int) -> None:
        """Repeated sign-ups replace the oldest instead of adding rows until they expire."""
        newest = (
            select(t.id)
            .where(t.email_normalized == email_normalized)
            .order_by(t.created_at.desc(), t.id.desc())
            .limit(count)
        )
        await tx.execute(
            delete(pending_signups).where(t.email_normalized == email_normalized, t.id.not_in(newest.scalar_subquery()))
        )

    async def by_token(self, tx: Tx, token_hash: str) -> PendingSignup | None:
        row = (await tx.execute(select(pending_signups).where(t.token_hash == token_hash))).first()
        return _signup(row) if row else None

    async def lock_address(self, tx: Tx, email_normalized: str) -> None:
        """Lock every sign-up of the address in one order, so verifications of one address
        queue instead of deadlocking (PostgreSQL; SQLite writers are serialized anyway)."""
        await tx.execute(select(t.id).where(t.email_normalized == email_normalized).order_by(t.id).with_for_update())

    async def claim(self, tx: Tx, signup_id: str, token_hash: str) -> bool:
        return await changed(tx, delete(pending_signups).where(t.id == signup_id, t.token_hash == token_hash)) == 1

    async def latest_live(self, tx: Tx, email_normalized: str, now: datetime) -> PendingSignup | None:
        query = _live(email_normalized, now).order_by(t.created_at.desc(), t.id.desc()).limit(1)
        row = (await tx.execute(query)).first()
        return _signup(row) if row else None

    async def count_live(self, tx: Tx, email_normalized: str, now: datetime) -> int:
        return len((await tx.execute(_live(email_normalized, now).limit(2))).all())

    async def rotate_token(self, tx: Tx, signup_id: str, new_hash: str, expires_at: datetime) -> bool:
        query = update(pending_signups).where(t.id == signup_id).values(token_hash=new_hash, expires_at=expires_at)
        return await changed(tx, query) == 1

    async def delete_for_address(self, tx: Tx, email_normalized: str) -> None:
        await tx.execute(delete(pending_signups).where(t.email_normalized == email_normalized))

    async def delete_expired(self, tx: Tx, now: datetime, email_normalized: str) -> None:
        await tx.execute(delete(pending_signups).where(t.expires_at <= now, t.email_normalized == email_normalized))
