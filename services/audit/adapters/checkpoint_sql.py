"""Signed chain checkpoints (append-only)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import UtcDateTime
from services.audit.adapters.sql import chain_heads, metadata
from services.audit.domain.checkpoints import Checkpoint

checkpoints = Table(
    "chain_checkpoints",
    metadata,
    Column("chain_key", String(160), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("head_hash", String(64), nullable=False),
    Column("signed_at", UtcDateTime, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)


# After archiving, a chain starts at (seq, hash) instead of the genesis.
chain_bases = Table(
    "chain_bases",
    metadata,
    Column("chain_key", String(160), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("archived_at", UtcDateTime, nullable=False),
    Column("archive", String(500), nullable=False),
    # The newest event time archived from the chain (every cut so far): the id rows of archived
    # events are trimmed, so an event this old or older is refused instead (app.record_events).
    Column("archived_until", UtcDateTime, nullable=True),
)


async def base_of(session: AsyncSession, chain_key: str) -> tuple[int, str] | None:
    row = (
        await session.execute(select(chain_bases.c.seq, chain_bases.c.hash).where(chain_bases.c.chain_key == chain_key))
    ).first()
    return None if row is None else (row.seq, row.hash)


async def archived_until(session: AsyncSession, chain_keys: Collection[str]) -> dict[str, datetime]:
    rows = await session.execute(
        select(chain_bases.c.chain_key, chain_bases.c.archived_until).where(
            chain_bases.c.chain_key.in_(sorted(chain_keys)), chain_bases.c.archived_until.is_not(None)
        )
    )
    return {r.chain_key: r.archived_until for r in rows}


async def for_chain(session: AsyncSession, chain_key: str) -> list[Checkpoint]:
    rows = (
        await session.execute(
            select(checkpoints).where(checkpoints.c.chain_key == chain_key).order_by(checkpoints.c.seq)
        )
    ).all()
    return [Checkpoint(r.chain_key, r.seq, r.head_hash, r.signed_at, r.key_id, r.signature) for r in rows]


async def add(session: AsyncSession, cp: Checkpoint) -> None:
    await session.execute(
        insert(checkpoints).values(
            chain_key=cp.chain_key,
            seq=cp.seq,
            head_hash=cp.head_hash,
            signed_at=cp.signed_at,
            key_id=cp.key_id,
            signature=cp.signature,
        )
    )


async def chains_moved_since_checkpoint(session: AsyncSession, limit: int) -> list[str]:
    """Chains whose head is past their last checkpoint (or that have none)."""
    last = (
        select(checkpoints.c.chain_key, func.max(checkpoints.c.seq).label("seq"))
        .group_by(checkpoints.c.chain_key)
        .subquery()
    )
    query = (
        select(chain_heads.c.chain_key)
        .select_from(chain_heads.outerjoin(last, last.c.chain_key == chain_heads.c.chain_key))
        .where((last.c.seq.is_(None)) | (chain_heads.c.seq > last.c.seq))
        .limit(limit)
    )
    return [r.chain_key for r in (await session.execute(query)).all()]
