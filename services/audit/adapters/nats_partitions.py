"""The AUDIT stream's partitions as JetStream pull consumers: one durable consumer per
partition (`audit-store-pNN`, filtered on `audit.events.pNN.>`), consumed by whichever
replica holds the partition's lease. A fetched batch is stored in one transaction and acked
after the commit; a batch the replica may no longer store (its lease lapsed) is handed back
at once for the new holder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from deelrx_kit import nats_bus
from deelrx_kit.audit_partitions import partition_filter
from services.audit.app import AuditLog, LeaseLost, PartitionLease
from services.audit.convert import decode_event
from services.audit.domain.events import EventRecord

log = structlog.get_logger(__name__)

STREAM = "AUDIT"
DURABLE_PREFIX = "audit-store-p"
# Up to this many events per transaction; a fetch returns what is there at once, and waits
# at most FETCH_WAIT_SECONDS for the first message when the partition is idle (kept short:
# a released partition's consumer stops within it).
FETCH_BATCH = 2000
FETCH_WAIT_SECONDS = 0.5


def durable_name(partition: int) -> str:
    return f"{DURABLE_PREFIX}{partition:02d}"


class PartitionConsumers:
    """Starts and stops the consumer of each partition this replica holds."""

    def __init__(
        self,
        audit: AuditLog,
        js: Callable[[], JetStreamContext | None],
        *,
        owner: str,
        max_deliver: int = nats_bus.MAX_DELIVER,
        batch: int = FETCH_BATCH,
    ) -> None:
        self.audit = audit
        self._js = js
        self.owner = owner
        self.max_deliver = max_deliver
        self.batch = batch
        self._running: dict[int, tuple[asyncio.Event, asyncio.Task[None]]] = {}

    @property
    def running(self) -> frozenset[int]:
        return frozenset(p for p, (_, task) in self._running.items() if not task.done())

    async def start(self, partition: int) -> None:
        if partition in self.running:
            return
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._consume(partition, stop))
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

    async def _consume(self, partition: int, stop: asyncio.Event) -> None:
        durable = durable_name(partition)
        sub = None
        try:
            while not stop.is_set():
                js = self._js()
                if js is None:  # not connected yet
                    await asyncio.sleep(0.1)
                    continue
                try:
                    if sub is None:
                        await nats_bus.ensure_consumer(
                            js, STREAM, partition_filter(partition), durable, self.max_deliver
                        )
                        sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM)
                    msgs = await sub.fetch(self.batch, timeout=FETCH_WAIT_SECONDS)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except Exception as exc:  # noqa: BLE001 - NATS down or stream missing: keep trying
                    log.warning("partition_consume_retry", partition=partition, error=str(exc))
                    await asyncio.sleep(1)
                    continue
                if not await self._handle(js, partition, durable, msgs):
                    return
        finally:
            if sub is not None:
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001, S110 - the connection is gone already
                    pass

    async def _handle(self, js: JetStreamContext, partition: int, durable: str, msgs: list[Msg]) -> bool:
        """Store a fetched batch; False when the partition's lease is lost."""
        records: list[EventRecord] = []
        good: list[Msg] = []
        for msg in msgs:
            record = decode_event(msg.data, (msg.headers or {}).get("Nats-Msg-Id", ""))
            if record is None:
                # Redelivering would not help: kept in the dead-letter stream instead.
                await nats_bus.dead_letter(js, msg, durable, "poison: unreadable audit event")
                continue
            records.append(record)
            good.append(msg)
        if not records:
            return True
        try:
            await self.audit.record_events(records, lease=PartitionLease(self.owner, partition))
        except LeaseLost:
            log.info("partition_lease_lost", partition=partition, handed_back=len(good))
            for msg in good:
                await msg.nak()
            return False
        except Exception as exc:  # noqa: BLE001 - database unreachable: retried with backoff
            log.warning("partition_batch_failed", partition=partition, size=len(good), error=str(exc))
            for msg in good:
                delivered = msg.metadata.num_delivered
                if delivered >= self.max_deliver:
                    await nats_bus.dead_letter(js, msg, durable, f"{type(exc).__name__}: {exc}")
                else:
                    await msg.nak(delay=nats_bus.BACKOFF_SECONDS[min(delivered, len(nats_bus.BACKOFF_SECONDS)) - 1])
            return True
        # After the commit: a lost ack only means a redelivery, which the store skips.
        for msg in good:
            await msg.ack()
        return True
