"""Retention's reads and removals in SQL: which chains hold events stored before a time, where
a chain's kept part begins, and dropping an archived prefix (the event rows and their id rows)
while the chain's base moves to the archive's signed (seq, hash) and its `archived_until` to
the newest event time archived, below which the store refuses the chain's events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, distinct, select
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import dialect_insert
from services.audit.adapters.checkpoint_sql import chain_bases
from services.audit.adapters.sql import event_ids, events


async def chains_stored_before(session: AsyncSession, before: datetime, limit: int) -> list[str]:
    query = select(distinct(events.c.chain_key)).where(events.c.stored_at < before).limit(limit)
    return list((await session.execute(query)).scalars())


async def first_kept_seq(session: AsyncSession, chain_key: str, after_seq: int, before: datetime) -> int | None:
    return await session.scalar(
        select(events.c.seq)
        .where(events.c.chain_key == chain_key, events.c.seq > after_seq, events.c.stored_at >= before)
        .order_by(events.c.seq)
        .limit(1)
    )


async def drop_archived(
    session: AsyncSession,
    chain_key: str,
    up_to_seq: int,
    head_hash: str,
    archived_at: datetime,
    archive: str,
    *,
    archived_until: datetime | None,
) -> None:
    await session.execute(delete(events).where(events.c.chain_key == chain_key, events.c.seq <= up_to_seq))
    # The id rows go too (the table would otherwise only grow); from now on the store refuses an
    # event of this chain as old as the newest archived one, so a late redelivery of an archived
    # event is not chained a second time.
    await session.execute(delete(event_ids).where(event_ids.c.chain_key == chain_key, event_ids.c.seq <= up_to_seq))
    before = await session.scalar(select(chain_bases.c.archived_until).where(chain_bases.c.chain_key == chain_key))
    if before is not None and (archived_until is None or before > archived_until):
        archived_until = before
    values = {
        "seq": up_to_seq,
        "hash": head_hash,
        "archived_at": archived_at,
        "archive": archive[:500],
        "archived_until": archived_until,
    }
    await session.execute(
        dialect_insert(session, chain_bases)
        .values(chain_key=chain_key, **values)
        .on_conflict_do_update(index_elements=["chain_key"], set_=values)
    )
