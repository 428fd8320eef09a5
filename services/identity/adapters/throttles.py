"""Failed-attempt counters and mail throttles, changed only by conditional statements so
concurrent attempts stay within their limits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, null, or_, select, update
from sqlalchemy import case as sql_case

from services.identity.adapters.sql_common import changed, insert_ignore
from services.identity.adapters.tables import login_accounts, login_clients, mail_throttle
from services.identity.ports import Tx

acc = login_accounts.c
cli = login_clients.c


class SqlLoginThrottle:
    async def reserve_account(self, tx: Tx, key: str, limit: int, now: datetime) -> bool:
        await insert_ignore(tx, login_accounts, {"account_key": key, "failures": 0, "updated_at": now})
        query = update(login_accounts).where(acc.account_key == key, acc.failures < limit)
        return await changed(tx, query.values(failures=acc.failures + 1, updated_at=now)) == 1

    async def release_account(self, tx: Tx, key: str, now: datetime) -> None:
        query = update(login_accounts).where(acc.account_key == key, acc.failures > 0)
        await tx.execute(query.values(failures=acc.failures - 1, updated_at=now))

    async def reset_account(self, tx: Tx, key: str, now: datetime) -> None:
        await tx.execute(update(login_accounts).where(acc.account_key == key).values(failures=0, updated_at=now))

    async def reserve_client(self, tx: Tx, key: str, client: str, limit: int, lock: timedelta, now: datetime) -> bool:
        """Count one failure for the client; the `limit`-th one starts the lock."""
        await insert_ignore(tx, login_clients, {"account_key": key, "client": client, "failures": 0, "updated_at": now})
        lock_over = and_(cli.locked_until.is_not(None), cli.locked_until <= now)
        query = (
            update(login_clients)
            .where(
                cli.account_key == key, cli.client == client, or_(cli.locked_until.is_(None), cli.locked_until <= now)
            )
            .values(
                failures=sql_case((lock_over, 1), else_=cli.failures + 1),
                locked_until=sql_case(
                    (lock_over, null()), (cli.failures + 1 >= limit, now + lock), else_=cli.locked_until
                ),
                updated_at=now,
            )
        )
        return await changed(tx, query) == 1

    async def client_locked_until(self, tx: Tx, key: str, client: str) -> datetime | None:
        query = select(cli.locked_until).where(cli.account_key == key, cli.client == client)
        row = (await tx.execute(query)).first()
        return row.locked_until if row else None

    async def forgive_client(self, tx: Tx, key: str, client: str, now: datetime) -> None:
        await self._clear(tx, now, cli.account_key == key, cli.client == client)

    async def clear_clients(self, tx: Tx, key: str, now: datetime) -> None:
        await self._clear(tx, now, cli.account_key == key)

    async def _clear(self, tx: Tx, now: datetime, *where: Any) -> None:
        await tx.execute(update(login_clients).where(*where).values(failures=0, locked_until=None, updated_at=now))


class SqlMailThrottle:
    async def claim(self, tx: Tx, purpose: str, address_key: str, interval: timedelta, now: datetime) -> bool:
        """True when no mail of this purpose went to the address within `interval`."""
        if await insert_ignore(
            tx, mail_throttle, {"purpose": purpose, "address_key": address_key, "last_sent_at": now}
        ):
            return True
        m = mail_throttle.c
        query = update(mail_throttle).where(
            m.purpose == purpose, m.address_key == address_key, m.last_sent_at <= now - interval
        )
        return await changed(tx, query.values(last_sent_at=now)) == 1
