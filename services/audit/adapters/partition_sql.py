"""Partitions in the audit database: the leases by which audit replicas share the AUDIT
stream's partitions, the replicas' heartbeats, and (PostgreSQL) the monthly partitions of
`audit_events`."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Column, Integer, String, Table, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import UtcDateTime
from services.audit.adapters.sql import metadata
from services.audit.domain.months import MonthRange

partition_leases = Table(
    "audit_partition_leases",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

replicas = Table(
    "audit_replicas",
    metadata,
    Column("replica_id", String(64), primary_key=True),
    Column("seen_at", UtcDateTime, nullable=False),
)


# -- replicas and leases ------------------------------------------------------------------
async def heartbeat(session: AsyncSession, replica_id: str, now: datetime) -> None:
    done = await session.execute(update(replicas).where(replicas.c.replica_id == replica_id).values(seen_at=now))
    if done.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(insert(replicas).values(replica_id=replica_id, seen_at=now))


async def live_replicas(session: AsyncSession, since: datetime) -> int:
    rows = await session.execute(select(replicas.c.replica_id).where(replicas.c.seen_at >= since))
    return len(rows.all())


async def forget_replicas(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(replicas).where(replicas.c.seen_at < before))


async def leases(session: AsyncSession) -> dict[int, tuple[str, datetime]]:
    rows = await session.execute(select(partition_leases))
    return {r.partition: (r.owner, r.expires_at) for r in rows}


async def claim(session: AsyncSession, partition: int, owner: str, now: datetime, until: datetime) -> bool:
    """Renew our lease, or take a partition whose lease lapsed or that has none; False when
    another replica holds it.

    Renewing is a plain UPDATE, which does not wait for our own appends in flight (they hold
    the row FOR KEY SHARE, `hold`). Taking a lapsed lease over first locks the row FOR UPDATE,
    which waits until the old holder's appends in flight have ended: from then on its `hold`
    finds the row no longer its own."""
    row = (
        await session.execute(
            select(partition_leases.c.owner, partition_leases.c.expires_at).where(
                partition_leases.c.partition == partition
            )
        )
    ).first()
    if row is None:
        try:
            async with session.begin_nested():
                await session.execute(
                    insert(partition_leases).values(partition=partition, owner=owner, expires_at=until)
                )
        except IntegrityError:
            return False  # another replica created it first
        return True
    if row.owner == owner:
        done = await session.execute(
            update(partition_leases)
            .where(partition_leases.c.partition == partition, partition_leases.c.owner == owner)
            .values(expires_at=until)
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]
    if row.expires_at >= now:
        return False
    lapsed = select(partition_leases.c.partition).where(
        partition_leases.c.partition == partition, partition_leases.c.expires_at < now
    )
    if session.get_bind().dialect.name == "postgresql":
        lapsed = lapsed.with_for_update()
    if await session.scalar(lapsed) is None:
        return False  # renewed or taken meanwhile
    done = await session.execute(
        update(partition_leases)
        .where(partition_leases.c.partition == partition, partition_leases.c.expires_at < now)
        .values(owner=owner, expires_at=until)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


async def release(session: AsyncSession, partitions: Collection[int], owner: str) -> None:
    await session.execute(
        delete(partition_leases).where(
            partition_leases.c.partition.in_(list(partitions)), partition_leases.c.owner == owner
        )
    )


async def hold(session: AsyncSession, partitions: Collection[int], owner: str, now: datetime) -> frozenset[int]:
    """Which of `partitions` `owner` holds now. On PostgreSQL those lease rows stay locked FOR
    KEY SHARE until the transaction ends: no other replica can take them over while this
    transaction appends to their chains (the fencing of a replica that stalled past its
    lease), while our own renewals, plain updates, go through. SQLite has one writer at a time."""
    query = select(partition_leases.c.partition).where(
        partition_leases.c.partition.in_(sorted(partitions)),
        partition_leases.c.owner == owner,
        partition_leases.c.expires_at >= now,
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(read=True, key_share=True)
    return frozenset((await session.scalars(query)).all())


# -- monthly partitions of audit_events (PostgreSQL) ---------------------------------------
def month_table(month: MonthRange) -> str:
    return f"audit_events_{month.start:%Y_%m}"


async def ensure_month_partitions(session: AsyncSession, months: Collection[MonthRange]) -> list[str]:
    """Create the missing monthly partitions (PostgreSQL only); their names."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    created = []
    for month in months:
        name = month_table(month)
        found = await session.scalar(text("SELECT to_regclass(:n)"), {"n": name})
        if found is not None:
            continue
        # Names and bounds come from dates, never from input: safe to inline (DDL takes no binds).
        await session.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_events "
                f"FOR VALUES FROM ('{month.start.isoformat()}') TO ('{month.end.isoformat()}')"
            )
        )
        created.append(name)
    return created
