"""Holds on accounts placed by automatic responses to security alerts (a timed lock, a second
factor demanded at the next login), the responses already applied per alert (so a redelivered
alert applies nothing twice), and the codes mailed for a login's second step."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update

from services.identity.adapters.sql_common import changed, insert_ignore
from services.identity.adapters.tables import account_holds, mfa_mail_codes, security_responses
from services.identity.ports import Hold, Tx

h = account_holds.c
m = mfa_mail_codes.c


class SqlAccountHoldStore:
    async def claim_response(self, tx: Tx, alert_id: str, action: str, now: datetime) -> bool:
        """True for exactly one caller per (alert, action), also under concurrency."""
        values = {"alert_id": alert_id, "action": action, "applied_at": now}
        return await insert_ignore(tx, security_responses, values) == 1

    async def lock(self, tx: Tx, account: str, until: datetime, reason: str, now: datetime) -> None:
        """Lock until `until`, never shortening a longer lock already in place."""
        await insert_ignore(tx, account_holds, {"account": account, "updated_at": now})
        query = update(account_holds).where(h.account == account, or_(h.locked_until.is_(None), h.locked_until < until))
        await tx.execute(query.values(locked_until=until, lock_reason=reason[:64], updated_at=now))

    async def require_mfa(self, tx: Tx, account: str, reason: str, now: datetime) -> None:
        await insert_ignore(tx, account_holds, {"account": account, "updated_at": now})
        query = update(account_holds).where(h.account == account)
        await tx.execute(query.values(mfa_required_at=now, mfa_reason=reason[:64], updated_at=now))

    async def locked_until(self, tx: Tx, accounts: list[str], now: datetime) -> datetime | None:
        query = select(h.locked_until).where(h.account.in_(accounts), h.locked_until.is_not(None), h.locked_until > now)
        found = [r.locked_until for r in (await tx.execute(query)).all()]
        return max(found) if found else None

    async def mfa_required(self, tx: Tx, account: str) -> bool:
        row = (await tx.execute(select(h.mfa_required_at).where(h.account == account))).first()
        return row is not None and row.mfa_required_at is not None

    async def clear_mfa(self, tx: Tx, account: str, now: datetime) -> None:
        query = update(account_holds).where(h.account == account, h.mfa_required_at.is_not(None))
        await tx.execute(query.values(mfa_required_at=None, mfa_reason="", updated_at=now))

    async def release_lock(self, tx: Tx, account: str, now: datetime) -> None:
        query = update(account_holds).where(h.account == account, h.locked_until.is_not(None))
        await tx.execute(query.values(locked_until=None, lock_reason="", updated_at=now))

    async def get(self, tx: Tx, account: str) -> Hold | None:
        row = (await tx.execute(select(account_holds).where(h.account == account))).first()
        return Hold(row.account, row.locked_until, row.mfa_required_at is not None) if row else None

    async def add_mail_code(self, tx: Tx, challenge_hash: str, code_hash: str, expires_at: datetime) -> None:
        values = {"challenge_hash": challenge_hash, "code_hash": code_hash, "expires_at": expires_at}
        await insert_ignore(tx, mfa_mail_codes, values)

    async def mail_code(self, tx: Tx, challenge_hash: str, now: datetime) -> str | None:
        query = select(m.code_hash).where(m.challenge_hash == challenge_hash, m.expires_at > now)
        row = (await tx.execute(query)).first()
        return str(row.code_hash) if row else None

    async def drop_mail_code(self, tx: Tx, challenge_hash: str) -> None:
        await changed(tx, delete(mfa_mail_codes).where(m.challenge_hash == challenge_hash))
