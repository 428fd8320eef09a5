"""Retention's reads and removals in SQL: which chains hold events stored before a time, where
a chain's kept part begins, and dropping an archived prefix (the event rows; their ids stay in
audit_event_ids, so a redelivery of an archived event is still recognised) while the chain's
base moves to the archive's signed (seq, hash)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, distinct, select
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import dialect_insert
from services.audit.adapters.checkpoint_sql import chain_bases
from services.audit.adapters.sql import events


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
    session: AsyncSession, chain_key: str, up_to_seq: int, head_hash: str, archived_at: datetime, archive: str
) -> None:
    await session.execute(delete(events).where(events.c.chain_key == chain_key, events.c.seq <= up_to_seq))
    values = {"seq": up_to_seq, "hash": head_hash, "archived_at": archived_at, "archive": archive[:500]}
    await session.execute(
        dialect_insert(session, chain_bases)
        .values(chain_key=chain_key, **values)
        .on_conflict_do_update(index_elements=["chain_key"], set_=values)
    )
