"""Batched deletion of expired rows, run by one replica at a time.

Each rule names a table and what "expired" means for it. Rows go in small batches, each its
own short transaction (`DELETE ... WHERE key IN (SELECT key ... LIMIT n)`), so a large backlog
never holds locks for long or blocks the writers it shares the database with. On PostgreSQL a
session-level advisory lock (per service and purge name) lets one replica purge while the
others skip that round; SQLite files belong to one host, so no lock is needed there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Table, delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.periodic import run_every

log = structlog.get_logger("deelrx.purge")

DEFAULT_BATCH = 500
# A round stops after this many batches; the next round continues (bounded work per round).
DEFAULT_MAX_BATCHES = 200


@dataclass(frozen=True)
class PurgeRule:
    name: str
    table: Table
    # The condition "this row has expired", given the current time.
    expired: Callable[[datetime], Any]


@dataclass(frozen=True)
class PurgeResult:
    ran: bool  # False when another replica held the lock
    deleted: dict[str, int]


def _key_columns(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


async def _delete_batch(
    sessionmaker: async_sessionmaker[AsyncSession], rule: PurgeRule, now: datetime, batch: int
) -> int:
    cols = _key_columns(rule.table)
    chosen = select(*cols).where(rule.expired(now)).limit(batch)
    target = cols[0] if len(cols) == 1 else tuple_(*cols)
    async with sessionmaker() as session, session.begin():
        result = await session.execute(delete(rule.table).where(target.in_(chosen)))
    return int(getattr(result, "rowcount", 0) or 0)


async def purge(
    sessionmaker: async_sessionmaker[AsyncSession],
    rules: Sequence[PurgeRule],
    now: datetime,
    *,
    lock_name: str,
    batch: int = DEFAULT_BATCH,
    max_batches: int = DEFAULT_MAX_BATCHES,
) -> PurgeResult:
    """One purge round over `rules`, in order; skipped when another replica is purging."""
    engine = sessionmaker.kw["bind"]
    if engine.dialect.name != "postgresql":
        return PurgeResult(True, await _purge_rules(sessionmaker, rules, now, batch, max_batches))
    async with engine.connect() as conn:
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:n))"), {"n": lock_name})).scalar()
        await conn.commit()  # the lock belongs to the connection, not to this transaction
        if not got:
            return PurgeResult(False, {})
        try:
            return PurgeResult(True, await _purge_rules(sessionmaker, rules, now, batch, max_batches))
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": lock_name})
            await conn.commit()


async def _purge_rules(
    sessionmaker: async_sessionmaker[AsyncSession],
    rules: Sequence[PurgeRule],
    now: datetime,
    batch: int,
    max_batches: int,
) -> dict[str, int]:
    deleted: dict[str, int] = {}
    for rule in rules:
        total = 0
        for _ in range(max_batches):
            count = await _delete_batch(sessionmaker, rule, now, batch)
            total += count
            if count < batch:
                break
            await asyncio.sleep(0)  # let the requests that share this loop through
        deleted[rule.name] = total
    if any(deleted.values()):
        log.info("purged_expired_rows", **deleted)
    return deleted


async def purge_loop(
    sessionmaker: async_sessionmaker[AsyncSession],
    rules: Sequence[PurgeRule],
    clock: Clock,
    stop: asyncio.Event,
    *,
    lock_name: str,
    every_seconds: float = 300.0,
) -> None:
    """Purge every `every_seconds` until `stop` is set; failures are retried next round."""
    await run_every(
        every_seconds, lambda: purge(sessionmaker, rules, clock.now(), lock_name=lock_name), stop, name="purge"
    )
