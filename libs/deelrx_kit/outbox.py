"""Transactional outbox: a service writes its change and the event in one transaction;
a relay publishes committed events to JetStream with `Nats-Msg-Id` = event id.

Nothing is lost when NATS is down: rows stay until JetStream acknowledged them.
Nothing is doubled by a retry or by two relays: JetStream drops repeated ids, and relays
claim their rows (SKIP LOCKED on PostgreSQL, a file lease on SQLite) so replicas do not
publish the same rows. A batch is sent at once and its acknowledgements awaited together.
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from google.protobuf.message import Message
from nats.js import JetStreamContext
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.db import UtcDateTime
from deelrx_kit.ids import ulid
from deelrx_kit.metrics import EVENTS_PUBLISHED, OUTBOX_FAILURES
from deelrx_kit.periodic import wait_any

log = structlog.get_logger("deelrx.outbox")

PUBLISH_ACK_TIMEOUT = 5.0


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

    async def pending(self, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        async with sessionmaker() as session:
            rows = await session.execute(select(self.table.c.seq))
            return len(rows.all())

    async def relay(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
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
                published = await self._publish_batch(sessionmaker, js_provider(), batch)
                backoff = 0.1
            except Exception as exc:  # noqa: BLE001 - NATS or DB hiccup: keep the rows, retry
                OUTBOX_FAILURES.inc()
                log.warning("outbox_publish_failed", error=str(exc))
                await wait_any(stop, seconds=backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if published >= batch:
                continue
            self._wake.clear()
            # Woken by a new row, or by the stop (a stopping service does not wait out the poll).
            await wait_any(self._wake, stop, seconds=poll_seconds)

    async def _publish_batch(
        self, sessionmaker: async_sessionmaker[AsyncSession], js: JetStreamContext | None, batch: int
    ) -> int:
        """Claim up to `batch` rows, publish them with asynchronous acknowledgements, delete
        the acknowledged ones. Claiming keeps replicas of a service off each other's rows:
        `FOR UPDATE SKIP LOCKED` on PostgreSQL (row locks held while publishing; new rows
        are not blocked), an exclusive file lock beside the database on SQLite (held only
        outside any database transaction, so requests never wait for NATS)."""
        if js is None:
            raise ConnectionError("NATS not connected")
        bind = sessionmaker.kw.get("bind")
        if bind is not None and bind.dialect.name == "postgresql":
            async with sessionmaker() as session, session.begin():
                claimed = select(self.table).order_by(self.table.c.seq).limit(batch)
                rows = (await session.execute(claimed.with_for_update(skip_locked=True))).all()
                done = await self._publish(js, rows)
                if done:
                    await session.execute(delete(self.table).where(self.table.c.seq.in_(done)))
            return len(done)
        with _file_lease(bind) as held:
            if not held:
                return 0  # another process on this database relays now
            async with sessionmaker() as session:
                rows = (await session.execute(select(self.table).order_by(self.table.c.seq).limit(batch))).all()
            done = await self._publish(js, rows)
            if done:
                async with sessionmaker() as session, session.begin():
                    await session.execute(delete(self.table).where(self.table.c.seq.in_(done)))
        return len(done)

    async def _publish(self, js: JetStreamContext, rows: Sequence[Any]) -> list[str]:
        """Send every row, then wait for the acknowledgements together; the acknowledged seqs."""
        futures: list[tuple[str, str, asyncio.Future[Any]]] = []
        try:
            for row in rows:
                future = await js.publish_async(row.subject, row.payload, headers={"Nats-Msg-Id": row.msg_id})
                futures.append((row.seq, row.subject, future))
        finally:
            if futures:
                _, pending = await asyncio.wait([f for _, _, f in futures], timeout=PUBLISH_ACK_TIMEOUT)
                for f in pending:
                    f.cancel()
        done = []
        for seq, subject, f in futures:
            if f.done() and not f.cancelled() and f.exception() is None:
                EVENTS_PUBLISHED.labels(subject.split(".", 1)[0]).inc()
                done.append(seq)
        if len(done) < len(rows):
            OUTBOX_FAILURES.inc()
            log.warning("outbox_unacknowledged", count=len(rows) - len(done))
        return done


@contextmanager
def _file_lease(bind: Any) -> Iterator[bool]:
    """An exclusive, non-blocking lock on `<database>.outbox.lock` (released if we die)."""
    database = getattr(getattr(bind, "url", None), "database", None)
    if not database:
        yield True  # in-memory database: one process
        return
    with open(f"{database}.outbox.lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class JetStreamProvider:
    """Returns the current JetStream context, or None while NATS is unreachable."""

    def __init__(self) -> None:
        self.js: JetStreamContext | None = None

    def __call__(self) -> JetStreamContext | None:
        return self.js
