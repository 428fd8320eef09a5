"""The AUDIT stream's partitions as JetStream pull consumers: one durable consumer per
partition (`audit-store-pNN`, filtered on `audit.events.pNN.>`), consumed by whichever
replica holds the partition's lease.

Each held partition has a fetch loop; one writer per replica merges what the loops fetched
into one transaction (up to WRITE_BATCH events, from any number of partitions) and acks after
the commit, so the database sees few large transactions and one writer (SQLite has only one
anyway). A fetch loop waits for its batch to be stored before fetching again, which keeps each
partition's order. A batch of a partition whose lease this replica lost is handed back (nak)
for the new holder, and that partition's loop stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from deelrx_kit import nats_bus
from deelrx_kit.audit_partitions import partition_filter
from services.audit.adapters.protobuf_records import decode_stream_message
from services.audit.app import AuditLog, LeaseLost, PartitionFence
from services.audit.domain.events import EventRecord

log = structlog.get_logger(__name__)

STREAM = "AUDIT"
DURABLE_PREFIX = "audit-store-p"
# A fetch returns what is there at once (up to FETCH_BATCH) and waits at most
# FETCH_WAIT_SECONDS for the first message of an idle partition (kept short: a released
# partition's loop stops within it). The writer stores up to WRITE_BATCH events at once.
FETCH_BATCH = 2000
FETCH_WAIT_SECONDS = 0.5
WRITE_BATCH = 5000


def durable_name(partition: int) -> str:
    return f"{DURABLE_PREFIX}{partition:02d}"


@dataclass(eq=False)
class _Fetched:
    partition: int
    durable: str
    msgs: list[Msg]
    records: list[EventRecord]
    payloads: list[bytes]
    stored: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class PartitionConsumers:
    """Starts and stops the fetch loop of each partition this replica holds, and runs the
    writer they share."""

    def __init__(
        self,
        audit: AuditLog,
        js: Callable[[], JetStreamContext | None],
        *,
        owner: str,
        announce: Callable[[Sequence[EventRecord], Sequence[bytes]], None],
        max_deliver: int = nats_bus.MAX_DELIVER,
        fetch_batch: int = FETCH_BATCH,
        write_batch: int = WRITE_BATCH,
        consumer_prefix: str = "",
    ) -> None:
        self.audit = audit
        # DEELRX_NATS_CONSUMER_PREFIX: installations sharing one NATS keep their own consumers.
        self.consumer_prefix = consumer_prefix
        self._js = js
        self.owner = owner
        self.announce = announce
        self.max_deliver = max_deliver
        self.fetch_batch = fetch_batch
        self.write_batch = write_batch
        self._running: dict[int, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        self._queue: asyncio.Queue[_Fetched] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        # Events fetched and not yet stored: the loops fetch no more past this, so a fetched
        # event is acked within about two transactions, far inside the consumers' ack wait
        # (sixteen loops of 2,000 would otherwise wait behind one writer).
        self.max_waiting = 2 * write_batch
        self._waiting = 0
        self._room = asyncio.Event()
        self._room.set()

    @property
    def running(self) -> frozenset[int]:
        return frozenset(p for p, (_, task) in self._running.items() if not task.done())

    async def start(self, partition: int) -> None:
        if partition in self.running:
            return
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._fetch_loop(partition, stop))
        self._running[partition] = (stop, task)

    async def stop(self, partition: int) -> None:
        """Stop after the batch in hand is stored (or handed back)."""
        entry = self._running.pop(partition, None)
        if entry is None:
            return
        stop, task = entry
        stop.set()
        await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(p) for p in list(self._running)))
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None

    # -- fetching, one loop per partition ------------------------------------------------
    async def _fetch_loop(self, partition: int, stop: asyncio.Event) -> None:
        durable = self.consumer_prefix + durable_name(partition)
        pull = nats_bus.DurablePull(STREAM, partition_filter(partition), durable, self.max_deliver, stop)
        try:
            while not stop.is_set():
                js = self._js()
                if js is None:  # not connected yet
                    await asyncio.sleep(0.1)
                    continue
                if self._waiting >= self.max_waiting:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), FETCH_WAIT_SECONDS)
                    continue
                msgs = await pull.next_batch(js, self.fetch_batch, wait=FETCH_WAIT_SECONDS, partition=partition)
                if not msgs:
                    continue
                batch = await self._decode(js, partition, durable, msgs)
                if batch is None:
                    continue
                self._waiting += len(batch.msgs)
                self._queue.put_nowait(batch)
                if not await batch.stored:
                    return  # the lease went to another replica
        finally:
            # Hands back what arrived after the last fetch: the partition's next holder gets it now.
            await pull.close()

    async def _decode(self, js: JetStreamContext, partition: int, durable: str, msgs: list[Msg]) -> _Fetched | None:
        records: list[EventRecord] = []
        payloads: list[bytes] = []
        good: list[Msg] = []
        for msg in msgs:
            decoded = decode_stream_message(msg.data, msg.headers)
            if decoded is None:
                # Redelivering would not help: kept in the dead-letter stream instead.
                await nats_bus.dead_letter(js, msg, durable, "poison: unreadable audit event")
                continue
            records.append(decoded[0])
            payloads.append(decoded[1])
            good.append(msg)
        return _Fetched(partition, durable, good, records, payloads) if good else None

    # -- writing, one writer per replica -------------------------------------------------
    async def _write_loop(self) -> None:
        while True:
            batches = [await self._queue.get()]
            size = len(batches[0].records)
            while size < self.write_batch and not self._queue.empty():
                batches.append(self._queue.get_nowait())
                size += len(batches[-1].records)
            try:
                await self._write(batches)
            except Exception:
                log.exception("partition_write_failed", size=size)
                for b in batches:
                    if not b.stored.done():
                        b.stored.set_result(True)
            finally:
                self._waiting -= sum(len(b.msgs) for b in batches)
                self._room.set()

    async def _write(self, batches: list[_Fetched]) -> None:
        partitions = frozenset(b.partition for b in batches)
        try:
            stored = await self.audit.record_events(
                [r for b in batches for r in b.records], fence=PartitionFence(self.owner, partitions), announce=False
            )
        except LeaseLost as lost:
            kept = [b for b in batches if b.partition not in lost.partitions]
            for b in batches:
                if b.partition in lost.partitions:
                    log.info("partition_lease_lost", partition=b.partition, handed_back=len(b.msgs))
                    for msg in b.msgs:
                        await msg.nak()
                    b.stored.set_result(False)
            if kept:
                await self._write(kept)
            return
        except Exception as exc:  # noqa: BLE001 - database unreachable: redelivered with backoff
            log.warning("partition_batch_failed", size=sum(len(b.msgs) for b in batches), error=str(exc))
            js = self._js()
            for b in batches:
                for msg in b.msgs:
                    delivered = msg.metadata.num_delivered
                    if delivered >= self.max_deliver and js is not None:
                        await nats_bus.dead_letter(js, msg, b.durable, f"{type(exc).__name__}: {exc}")
                    else:
                        await msg.nak(delay=nats_bus.nak_delay(delivered))
                b.stored.set_result(True)
            return
        if stored:
            payloads = {r.id: p for b in batches for r, p in zip(b.records, b.payloads, strict=True)}
            self.announce([c.event for c in stored], [payloads[c.event.id] for c in stored])
        # After the commit: a lost ack only means a redelivery, which the store skips.
        for b in batches:
            for msg in b.msgs:
                await msg.ack()
            b.stored.set_result(True)
