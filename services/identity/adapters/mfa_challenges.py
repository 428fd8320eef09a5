"""MFA login challenges: the state between a login's password step and its second factor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from services.identity.adapters.sql_common import changed
from services.identity.adapters.tables import mfa_challenges
from services.identity.ports import MfaChallenge, Tx

c = mfa_challenges.c


def _live(token_hash: str, max_failures: int, now: datetime) -> tuple[Any, ...]:
    return (c.token_hash == token_hash, c.expires_at > now, c.failures < max_failures)


class SqlMfaChallengeStore:
    async def add(self, tx: Tx, challenge: MfaChallenge, now: datetime) -> None:
        await tx.execute(delete(mfa_challenges).where(c.expires_at <= now))
        await tx.execute(
            insert(mfa_challenges).values(
                token_hash=challenge.token_hash,
                user_id=challenge.user_id,
                auth_time=challenge.auth_time,
                token_delivery=challenge.token_delivery,
                client=challenge.client,
                failures=challenge.failures,
                expires_at=challenge.expires_at,
                created_at=now,
            )
        )

    async def live(self, tx: Tx, token_hash: str, max_failures: int, now: datetime) -> MfaChallenge | None:
        row = (await tx.execute(select(mfa_challenges).where(*_live(token_hash, max_failures, now)))).first()
        if row is None:
            return None
        return MfaChallenge(
            row.token_hash, row.user_id, row.auth_time, row.token_delivery, row.failures, row.expires_at, row.client
        )

    async def reserve_attempt(self, tx: Tx, token_hash: str, max_failures: int, now: datetime) -> bool:
        """Count this attempt as wrong before checking it (forgiven by `consume`), so
        concurrent guesses never exceed `max_failures`."""
        query = update(mfa_challenges).where(*_live(token_hash, max_failures, now)).values(failures=c.failures + 1)
        return await changed(tx, query) == 1

    async def consume(self, tx: Tx, token_hash: str) -> bool:
        return await changed(tx, delete(mfa_challenges).where(c.token_hash == token_hash)) == 1

    async def forget_user(self, tx: Tx, user_id: str) -> None:
        await tx.execute(delete(mfa_challenges).where(c.user_id == user_id))
