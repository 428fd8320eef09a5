"""Recovery codes: a keyed selector and an argon2id hash each; a code is used once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from services.identity.adapters.sql_common import changed
from services.identity.adapters.tables import recovery_codes
from services.identity.ports import StoredRecoveryCode, Tx

c = recovery_codes.c


class SqlRecoveryCodeStore:
    async def replace_set(self, tx: Tx, user_id: str, codes: list[tuple[str, str, str]], now: datetime) -> None:
        """(id, selector, hash) rows become the user's only set; the old set stops working."""
        await self.forget_user(tx, user_id)
        if codes:
            rows = [
                {"id": i, "user_id": user_id, "selector": sel, "code_hash": h, "created_at": now, "used_at": None}
                for i, sel, h in codes
            ]
            await tx.execute(insert(recovery_codes), rows)

    async def candidates(self, tx: Tx, user_id: str, selector: str) -> list[StoredRecoveryCode]:
        query = select(c.id, c.code_hash).where(c.user_id == user_id, c.selector == selector, c.used_at.is_(None))
        return [StoredRecoveryCode(r.id, r.code_hash) for r in (await tx.execute(query)).all()]

    async def use(self, tx: Tx, code_id: str, now: datetime) -> bool:
        """Mark a code used; exactly one concurrent caller (and none after a regeneration) wins."""
        query = update(recovery_codes).where(c.id == code_id, c.used_at.is_(None)).values(used_at=now)
        return await changed(tx, query) == 1

    async def remaining(self, tx: Tx, user_id: str) -> int:
        query = select(func.count()).select_from(recovery_codes).where(c.user_id == user_id, c.used_at.is_(None))
        return int((await tx.execute(query)).scalar_one())

    async def forget_user(self, tx: Tx, user_id: str) -> None:
        await tx.execute(delete(recovery_codes).where(c.user_id == user_id))
