"""Transactional outbox: a service writes its change and the event in one transaction;
a relay publishes committed events to JetStream with `Nats-Msg-Id` = event id.

Nothing is lost when NATS is down: rows stay until JetStream acknowledged them.
Nothing is doubled by a retry or by two relays: JetStream drops repeated ids.
"""

from __future__ import annotations

import asyncio

import structlog
from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.db import UtcDateTime
from deelrx_kit.ids import ulid
from deelrx_kit.metrics import EVENTS_PUBLISHED, OUTBOX_FAILURES

log = structlog.get_logger("deelrx.outbox")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        # Sort key: ULIDs sort by time, so the relay publishes in commit order per process.
        Column("seq", String(26), primary_key=True),
        Column("msg_id", String(64), nullable=False),
        Column("subject", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
    )


class Outbox:
    def __init__(self, table: Table, clock: Clock | None = None) -> None:
        self.table = table
        self.clock = clock or SystemClock()
        self._wake = asyncio.Event()

    async def add(self, session: AsyncSession, subject: str, message: Message, msg_id: str) -> None:
        """Stage an event inside the caller's transaction."""
        await session.execute(
            insert(self.table).values(
                seq=ulid(),
                msg_id=msg_id,
                subject=subject,
                payload=message.SerializeToString(),
                created_at=self.clock.now(),
                attempts=0,
            )
        )

    def notify(self) -> None:
        """Wake the relay after a commit so events go out at once, not at the next poll."""
        self._wake.set()

    async def pending(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        async with sessions() as session:
            rows = await session.execute(select(self.table.c.seq))
            return len(rows.all())

    async def relay(
        self,
        sessions: async_sessionmaker[AsyncSession],
        js_provider: JetStreamProvider,
        stop: asyncio.Event,
        poll_seconds: float = 1.0,
        batch: int = 200,
    ) -> None:
        """Publish staged events until `stop`, oldest first; retry with backoff on failure."""
        backoff = 0.1
        while not stop.is_set():
            published = 0
            try:
                published = await self._publish_batch(sessions, js_provider(), batch)
                backoff = 0.1
            except Exception as exc:  # noqa: BLE001 - NATS or DB hiccup: keep the rows, retry
                OUTBOX_FAILURES.inc()
                log.warning("outbox_publish_failed", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published >= batch:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
            except TimeoutError:
                pass

    async def _publish_batch(
        self, sessions: async_sessionmaker[AsyncSession], js: JetStreamContext | None, batch: int
    ) -> int:
        if js is None:
            raise ConnectionError("NATS not connected")
        async with sessions() as session:
            rows = (await session.execute(select(self.table).order_by(self.table.c.seq).limit(batch))).all()
        done: list[str] = []
        try:
            for row in rows:
                await js.publish(row.subject, row.payload, headers={"Nats-Msg-Id": row.msg_id}, timeout=5)
                EVENTS_PUBLISHED.labels(row.subject.split(".", 1)[0]).inc()
                done.append(row.seq)
        finally:
            if done:
                async with sessions() as session, session.begin():
                    await session.execute(delete(self.table).where(self.table.c.seq.in_(done)))
        return len(done)


class JetStreamProvider:
    """Returns the current JetStream context, or None while NATS is unreachable."""

    def __init__(self) -> None:
        self.js: JetStreamContext | None = None

    def __call__(self) -> JetStreamContext | None:
        return self.js
