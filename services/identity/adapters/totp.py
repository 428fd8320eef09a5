"""TOTP state on the user row: the sealed secret and the last accepted time step.

Privileged: the only reader of TOTP secrets. A step is accepted by a conditional UPDATE, so two
concurrent requests with one code give one success.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from services.identity.adapters.sql_common import changed
from services.identity.adapters.tables import users
from services.identity.ports import TotpState, Tx

u = users.c


class SqlTotpStore:
    async def state(self, tx: Tx, user_id: str) -> TotpState | None:
        query = select(
            u.id,
            u.email,
            u.email_normalized,
            u.password_hash,
            u.totp_secret_encrypted,
            u.totp_enabled_at,
            u.totp_last_step,
        ).where(u.id == user_id)
        row = (await tx.execute(query)).first()
        if row is None:
            return None
        return TotpState(
            user_id=row.id,
            email=row.email,
            email_normalized=row.email_normalized,
            password_hash=row.password_hash,
            secret_sealed=row.totp_secret_encrypted,
            enabled=row.totp_enabled_at is not None,
            last_step=row.totp_last_step,
        )

    async def set_pending(self, tx: Tx, user_id: str, sealed: bytes, now: datetime) -> bool:
        """A new pending secret, unless TOTP is already on."""
        query = update(users).where(u.id == user_id, u.totp_enabled_at.is_(None))
        return await changed(tx, query.values(totp_secret_encrypted=sealed, totp_last_step=None, updated_at=now)) == 1

    async def enable(self, tx: Tx, user_id: str, sealed: bytes, step: int, now: datetime) -> bool:
        """Turn the pending secret on; exactly one of two concurrent confirmations wins."""
        query = update(users).where(u.id == user_id, u.totp_enabled_at.is_(None), u.totp_secret_encrypted == sealed)
        return await changed(tx, query.values(totp_enabled_at=now, totp_last_step=step, updated_at=now)) == 1

    async def accept_step(self, tx: Tx, user_id: str, step: int) -> bool:
        query = update(users).where(
            u.id == user_id, u.totp_enabled_at.is_not(None), or_(u.totp_last_step.is_(None), u.totp_last_step < step)
        )
        return await changed(tx, query.values(totp_last_step=step)) == 1

    async def disable(self, tx: Tx, user_id: str, now: datetime) -> bool:
        query = update(users).where(u.id == user_id, u.totp_enabled_at.is_not(None))
        values = {"totp_secret_encrypted": None, "totp_enabled_at": None, "totp_last_step": None, "updated_at": now}
        return await changed(tx, query.values(**values)) == 1

    # -- re-encryption under a new key (services/identity/reencrypt.py) --------------------
    async def sealed_secrets(self, tx: Tx) -> list[Any]:
        return list(
            (await tx.execute(select(u.id, u.totp_secret_encrypted).where(u.totp_secret_encrypted.is_not(None)))).all()
        )

    async def replace_sealed(self, tx: Tx, user_id: str, old: bytes, new: bytes) -> bool:
        query = update(users).where(u.id == user_id, u.totp_secret_encrypted == old)
        return await changed(tx, query.values(totp_secret_encrypted=new)) == 1
