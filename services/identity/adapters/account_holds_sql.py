"""Tables of the automatic responses to security alerts: holds on accounts (a timed lock, a
second factor demanded at the next login), the responses already applied per alert (so a
redelivered alert applies nothing twice), and the codes mailed for a login's second step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import UtcDateTime, dialect_insert
from services.identity.adapters.security_sql import mfa_challenges
from services.identity.adapters.sql import metadata

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


@dataclass(frozen=True)
class Hold:
    account: str
    locked_until: datetime | None
    mfa_required: bool


class AccountHoldRepository:
    async def claim_response(self, session: AsyncSession, alert_id: str, action: str, now: datetime) -> bool:
        """True for exactly one caller per (alert, action), also under concurrency."""
        result = await session.execute(
            dialect_insert(session, security_responses)
            .values(alert_id=alert_id, action=action, applied_at=now)
            .on_conflict_do_nothing()
        )
        return bool(result.rowcount == 1)

    async def _ensure(self, session: AsyncSession, account: str, now: datetime) -> None:
        await session.execute(
            dialect_insert(session, account_holds).values(account=account, updated_at=now).on_conflict_do_nothing()
        )

    async def lock(self, session: AsyncSession, account: str, until: datetime, reason: str, now: datetime) -> None:
        """Lock until `until`, never shortening a longer lock already in place."""
        await self._ensure(session, account, now)
        h = account_holds.c
        await session.execute(
            update(account_holds)
            .where(h.account == account, or_(h.locked_until.is_(None), h.locked_until < until))
            .values(locked_until=until, lock_reason=reason[:64], updated_at=now)
        )

    async def require_mfa(self, session: AsyncSession, account: str, reason: str, now: datetime) -> None:
        await self._ensure(session, account, now)
        await session.execute(
            update(account_holds)
            .where(account_holds.c.account == account)
            .values(mfa_required_at=now, mfa_reason=reason[:64], updated_at=now)
        )

    async def locked_until(self, session: AsyncSession, accounts: list[str], now: datetime) -> datetime | None:
        h = account_holds.c
        rows = await session.execute(
            select(h.locked_until).where(h.account.in_(accounts), h.locked_until.is_not(None), h.locked_until > now)
        )
        found = [r.locked_until for r in rows]
        return max(found) if found else None

    async def mfa_required(self, session: AsyncSession, account: str) -> bool:
        h = account_holds.c
        row = (await session.execute(select(h.mfa_required_at).where(h.account == account))).first()
        return row is not None and row.mfa_required_at is not None

    async def clear_mfa(self, session: AsyncSession, account: str, now: datetime) -> None:
        h = account_holds.c
        await session.execute(
            update(account_holds)
            .where(h.account == account, h.mfa_required_at.is_not(None))
            .values(mfa_required_at=None, mfa_reason="", updated_at=now)
        )

    async def release_lock(self, session: AsyncSession, account: str, now: datetime) -> None:
        h = account_holds.c
        await session.execute(
            update(account_holds)
            .where(h.account == account, h.locked_until.is_not(None))
            .values(locked_until=None, lock_reason="", updated_at=now)
        )

    async def get(self, session: AsyncSession, account: str) -> Hold | None:
        h = account_holds.c
        row = (await session.execute(select(account_holds).where(h.account == account))).first()
        if row is None:
            return None
        return Hold(row.account, row.locked_until, row.mfa_required_at is not None)

    async def add_mail_code(
        self, session: AsyncSession, challenge_hash: str, code_hash: str, expires_at: datetime
    ) -> None:
        await session.execute(
            dialect_insert(session, mfa_mail_codes)
            .values(challenge_hash=challenge_hash, code_hash=code_hash, expires_at=expires_at)
            .on_conflict_do_nothing()
        )

    async def mail_code(self, session: AsyncSession, challenge_hash: str, now: datetime) -> str | None:
        c = mfa_mail_codes.c
        row = (
            await session.execute(select(c.code_hash).where(c.challenge_hash == challenge_hash, c.expires_at > now))
        ).first()
        return str(row.code_hash) if row else None

    async def drop_mail_code(self, session: AsyncSession, challenge_hash: str) -> None:
        await session.execute(delete(mfa_mail_codes).where(mfa_mail_codes.c.challenge_hash == challenge_hash))
