"""Audit events the gateway publishes straight to JetStream (it has no outbox).

Each event goes out in the background, deduplicated by its id. While JetStream cannot take
events, they wait in a bounded in-memory backlog that the next successful publish flushes;
past the bound (or on a restart) they are lost, counted in a metric and logged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
from nats.aio.client import Client as NATS
from prometheus_client import Counter

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import audit_events

log = structlog.get_logger("deelrx.gateway.audit")

UNPUBLISHED = Counter(
    "deelrx_gateway_audit_events_unpublished_total",
    "Gateway audit events dropped unpublished (backlog full while JetStream was unreachable)",
    ["type"],
)
BACKLOG_LIMIT = 10_000


class BackloggedPublisher:
    def __init__(self, nats: Callable[[], NATS | None] = lambda: None, *, limit: int = BACKLOG_LIMIT) -> None:
        self.nats = nats
        self.limit = limit
        self._pending: set[asyncio.Task[None]] = set()
        self._backlog: deque[audit_pb2.AuditEvent] = deque()

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def publish(self, event: audit_pb2.AuditEvent) -> None:
        if self.nats() is None:
            self._keep(event)
            return
        task = asyncio.get_running_loop().create_task(self._publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self) -> None:
        """Wait for the publishes in flight (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _keep(self, event: audit_pb2.AuditEvent) -> None:
        if len(self._backlog) >= self.limit:
            dropped = self._backlog.popleft()
            UNPUBLISHED.labels(dropped.type).inc()
            log.warning("audit_event_dropped", type=dropped.type, backlog=self.limit)
        self._backlog.append(event)

    async def _send(self, event: audit_pb2.AuditEvent) -> None:
        nc: Any = self.nats()
        if nc is None:
            raise ConnectionError("NATS not connected")
        await nc.jetstream().publish(
            audit_events.subject_for(event),
            event.SerializeToString(),
            headers={"Nats-Msg-Id": event.id},
            timeout=3,
        )

    async def _publish(self, event: audit_pb2.AuditEvent) -> None:
        try:
            await self._send(event)
        except Exception as exc:  # noqa: BLE001 - kept for the next successful publish
            log.warning("audit_event_deferred", type=event.type, error=str(exc))
            self._keep(event)
            return
        # JetStream answers again: send what waited (the ids make repeats harmless).
        while self._backlog:
            waiting = self._backlog.popleft()
            try:
                await self._send(waiting)
            except Exception:  # noqa: BLE001
                self._backlog.appendleft(waiting)
                return
