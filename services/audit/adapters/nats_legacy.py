"""The drain of the AUDIT stream's unpartitioned subjects, left from before the upgrade.

Versions before the stream's partitions published audit events on `audit.events.<type>`. The
stream still takes that form (its subjects are `audit.events.>`), but no partition consumer
reads it: without this drain, whatever an older producer published before or during an
upgrade would stay unread until the stream's max age dropped it.

The durable consumer `audit-store-legacy` filters on `audit.events.*.*`: four tokens, the old
form of every event type (`<domain>.<action>`), never a partitioned subject
(`audit.events.pNN.<domain>.<action>`, five tokens). Should a partitioned event of a one-word
type match it anyway, it is acked here untouched: its partition's consumer stores it.

Events are stored through the same AuditLog.record_events, a fetched batch in one transaction
(stream order; after a failed batch, one by one in order). Only the replica holding partition
0's lease drains, with that lease as its fence, so there is one drain at a time whatever the
number of replicas. Chain heads are locked by every append, so the drain and the partition
consumers never fork a chain; a chain's legacy events are linked when drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Sequence

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from deelrx_kit import nats_bus
from deelrx_kit.audit_partitions import PREFIX
from services.audit.adapters.protobuf_records import decode_stream_message
from services.audit.app import AuditLog, PartitionFence
from services.audit.domain.events import EventRecord
from services.audit.ports import PartitionConsumers

log = structlog.get_logger(__name__)

STREAM = "AUDIT"
LEGACY_DURABLE = "audit-store-legacy"
LEGACY_FILTER = f"{PREFIX}*.*"
DRAIN_PARTITION = 0
BATCH = 500

_PARTITION_TOKEN = re.compile(r"p\d{2}")


def is_partitioned(subject: str) -> bool:
    return _PARTITION_TOKEN.fullmatch(subject.removeprefix(PREFIX).split(".", 1)[0]) is not None


class LegacyDrain:
    def __init__(
        self,
        audit: AuditLog,
        js: Callable[[], JetStreamContext | None],
        *,
        owner: str,
        announce: Callable[[Sequence[EventRecord], Sequence[bytes]], None],
        max_deliver: int = nats_bus.MAX_DELIVER,
        consumer_prefix: str = "",
    ) -> None:
        self.audit = audit
        self._js = js
        self.announce = announce
        self.max_deliver = max_deliver
        self.durable = consumer_prefix + LEGACY_DURABLE
        self._fence = PartitionFence(owner, frozenset({DRAIN_PARTITION}))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, alive: Callable[[], bool] = lambda: True) -> None:
        """Drain until `stop`, or until `alive()` turns false (partition 0's consumer ended)."""
        if self.running:
            return
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stop, alive))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, stop: asyncio.Event, alive: Callable[[], bool]) -> None:
        async def watch() -> None:
            while not stop.is_set():
                if not alive():
                    stop.set()
                await asyncio.sleep(0.5)

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            while (js := self._js()) is None:  # not connected yet
                if stop.is_set():
                    return
                await asyncio.sleep(0.1)
            await nats_bus.consume(
                js,
                stream=STREAM,
                subject=LEGACY_FILTER,
                durable=self.durable,
                handler=self._one,
                batch_handler=self._batch,
                stop=stop,
                batch=BATCH,
                max_deliver=self.max_deliver,
            )
        finally:
            watcher.cancel()

    async def _batch(self, msgs: list[Msg]) -> list[Msg]:
        """Store the readable legacy events at once; hand back the unreadable ones (dead-lettered
        one by one by `_one`)."""
        records: list[EventRecord] = []
        payloads: list[bytes] = []
        rest: list[Msg] = []
        for msg in msgs:
            if is_partitioned(msg.subject):
                continue
            decoded = decode_stream_message(msg.data, msg.headers)
            if decoded is None:
                rest.append(msg)
                continue
            records.append(decoded[0])
            payloads.append(decoded[1])
        await self._store(records, payloads)
        return rest

    async def _one(self, msg: Msg) -> None:
        if is_partitioned(msg.subject):
            return
        decoded = decode_stream_message(msg.data, msg.headers)
        if decoded is None:
            raise nats_bus.PoisonMessage("unreadable audit event")
        await self._store([decoded[0]], [decoded[1]])

    async def _store(self, records: list[EventRecord], payloads: list[bytes]) -> None:
        if not records:
            return
        # Without partition 0's lease this raises LeaseLost: the batch goes back to the stream
        # for the new holder, and ours stops with our partition 0 consumer.
        stored = await self.audit.record_events(records, fence=self._fence, announce=False)
        if stored:
            log.info("legacy_audit_events_stored", count=len(stored))
            by_id = {r.id: p for r, p in zip(records, payloads, strict=True)}
            self.announce([c.event for c in stored], [by_id[c.event.id] for c in stored])


class WithLegacyDrain:
    """The partition consumers, plus the legacy drain while partition 0 is held."""

    def __init__(self, consumers: PartitionConsumers, drain: LegacyDrain) -> None:
        self.consumers = consumers
        self.drain = drain

    @property
    def running(self) -> frozenset[int]:
        return self.consumers.running

    async def start(self, partition: int) -> None:
        await self.consumers.start(partition)
        if partition == DRAIN_PARTITION:
            # The drain never outlives partition 0's consumer (which ends when it loses the lease).
            await self.drain.start(lambda: DRAIN_PARTITION in self.consumers.running)

    async def stop(self, partition: int) -> None:
        if partition == DRAIN_PARTITION:
            await self.drain.stop()
        await self.consumers.stop(partition)

    async def stop_all(self) -> None:
        with contextlib.suppress(Exception):
            await self.drain.stop()
        await self.consumers.stop_all()
