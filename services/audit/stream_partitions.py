"""Which partitions of the AUDIT stream this replica consumes.

Every few seconds a replica records that it is alive, counts the live replicas, gives back
the partitions above its fair share (after its consumer of each has stored what it had in
hand), renews the leases it keeps and claims free or lapsed ones up to its share. A chain
lives in one partition, so at any moment each chain is appended to by at most one replica:
the append transaction itself checks the lease (app.AuditLog.record_events), so a replica
that stalled past its lease stores nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.audit_partitions import PARTITIONS
from deelrx_kit.clock import Clock
from deelrx_kit.db import transaction
from services.audit.domain.months import months_around
from services.audit.domain.partitions import plan
from services.audit.ports import LeaseStore, PartitionConsumers

log = structlog.get_logger(__name__)


class StreamPartitions:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        consumers: PartitionConsumers,
        *,
        leases: LeaseStore,
        replica_id: str,
        lease_seconds: float = 15.0,
        partitions: int = PARTITIONS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.consumers = consumers
        self.leases = leases
        self.replica_id = replica_id
        self.lease = timedelta(seconds=lease_seconds)
        self.partitions = partitions

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.rebalance()
                except Exception as exc:  # noqa: BLE001 - database away: leases lapse, consumers stop below
                    log.warning("partition_rebalance_failed", error=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.lease.total_seconds() / 3)
        finally:
            await self.consumers.stop_all()
            with contextlib.suppress(Exception):
                async with transaction(self.sessionmaker) as s:
                    await self.leases.release(s, range(self.partitions), self.replica_id)

    async def rebalance(self) -> None:
        now = self.clock.now()
        async with transaction(self.sessionmaker) as s:
            await self.leases.heartbeat(s, self.replica_id, now)
            await self.leases.forget_replicas(s, now - 20 * self.lease)
            # Two lease lengths: a replica busy storing may renew late, and must not look dead.
            live = await self.leases.live_replicas(s, now - 2 * self.lease)
            leases = await self.leases.leases(s)
        held = {p for p, (owner, until) in leases.items() if owner == self.replica_id and until >= now}
        free = {p for p in range(self.partitions) if p not in leases or leases[p][1] < now}
        todo = plan(partitions=self.partitions, held=held, free=free, live_replicas=live)
        # Consumers we run without a lease (it lapsed meanwhile) stop first.
        for p in self.consumers.running - held:
            await self.consumers.stop(p)
        if todo.release:
            for p in todo.release:
                await self.consumers.stop(p)
            async with transaction(self.sessionmaker) as s:
                await self.leases.release(s, todo.release, self.replica_id)
            log.info("partitions_released", partitions=sorted(todo.release))
        won: set[int] = set()
        for p in sorted(todo.renew) + list(todo.claim):
            # One short transaction each: a takeover waiting for the old holder's last append
            # does not hold up our renewals.
            async with transaction(self.sessionmaker) as s:
                at = self.clock.now()
                if await self.leases.claim(s, p, self.replica_id, at, at + self.lease):
                    won.add(p)
        for p in sorted(won - self.consumers.running):
            await self.consumers.start(p)
        for p in self.consumers.running - won:
            await self.consumers.stop(p)
        claimed = won - held
        if claimed:
            log.info("partitions_claimed", partitions=sorted(claimed), live_replicas=live)


class MonthPartitions:
    """Creates the monthly partitions of the events table ahead of time (PostgreSQL)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, *, leases: LeaseStore) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.leases = leases

    async def ensure(self) -> list[str]:
        async with transaction(self.sessionmaker) as s:
            created = await self.leases.ensure_month_partitions(s, months_around(self.clock.now()))
        if created:
            log.info("event_partitions_created", tables=created)
        return created

    async def run(self, stop: asyncio.Event, interval_seconds: float = 6 * 3600) -> None:
        while not stop.is_set():
            try:
                await self.ensure()
            except Exception as exc:  # noqa: BLE001 - retried at the next interval
                log.warning("event_partitions_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_seconds)
