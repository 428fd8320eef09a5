"""Password reset tokens: one live token per user, stored as SHA-256."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select

from services.identity.adapters.sql_common import changed
from services.identity.adapters.tables import password_resets
from services.identity.ports import Tx

r = password_resets.c


class SqlPasswordResetStore:
    async def replace(self, tx: Tx, user_id: str, token_hash: str, expires_at: datetime, now: datetime) -> None:
        """The new token invalidates any older one of the user."""
        await self.forget_user(tx, user_id)
        await tx.execute(
            insert(password_resets).values(
                user_id=user_id, token_hash=token_hash, expires_at=expires_at, created_at=now
            )
        )

    async def user_for(self, tx: Tx, token_hash: str, now: datetime) -> str | None:
        row = (await tx.execute(select(r.user_id).where(r.token_hash == token_hash, r.expires_at > now))).first()
        return str(row.user_id) if row else None

    async def claim(self, tx: Tx, token_hash: str, now: datetime) -> str | None:
        user_id = await self.user_for(tx, token_hash, now)
        if user_id is None:
            return None
        used = await changed(tx, delete(password_resets).where(r.token_hash == token_hash, r.expires_at > now))
        return user_id if used == 1 else None

    async def forget_user(self, tx: Tx, user_id: str) -> None:
        await tx.execute(delete(password_resets).where(r.user_id == user_id))
