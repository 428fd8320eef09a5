"""The revocation feed's heartbeat: every few seconds each sessions replica stages a heartbeat
on `sessions.revoked` through its outbox. Gateways treat the feed as healthy only while
heartbeats arrive, so a stalled outbox-to-NATS leg (not only a lost NATS connection) makes
them ask Redis, and refuse when Redis cannot answer either."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.db import transaction
from deelrx_kit.ids import ulid
from deelrx_kit.outbox import Outbox
from deelrx_kit.periodic import run_every
from services.sessions.adapters.revocations import RedisNatsRevocations

log = structlog.get_logger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 5.0


async def heartbeat_loop(
    db: async_sessionmaker[AsyncSession],
    revocations: RedisNatsRevocations,
    outbox: Outbox,
    clock: Clock,
    stop: asyncio.Event,
    *,
    every_seconds: float = HEARTBEAT_INTERVAL_SECONDS,
    replica: str | None = None,
) -> None:
    replica = replica or f"rep_{ulid()}"

    async def beat() -> None:
        async with transaction(db) as tx:
            await revocations.stage_heartbeat(tx, replica, clock.now())
        outbox.notify()

    # A failed beat is logged and skipped: the gateways see the gap and fall back.
    await run_every(every_seconds, beat, stop, name="revocation_heartbeat")
