"""JetStream consumers that feed the audit log: AUDIT events and ALERTS."""

from __future__ import annotations

import asyncio

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import nats_bus
from deelrx_kit.clock import Clock
from deelrx_kit.nats_bus import Handler
from services.audit.app import AuditLog
from services.audit.convert import alert_record, event_record

log = structlog.get_logger(__name__)

EVENTS_DURABLE = "audit-store"
ALERTS_DURABLE = "audit-alerts"


def _msg_id(msg: Msg) -> str:
    return (msg.headers or {}).get("Nats-Msg-Id", "")


class AuditFeed:
    def __init__(self, audit: AuditLog, clock: Clock) -> None:
        self.audit = audit
        self.clock = clock
        self._js: JetStreamContext | None = None
        self._connected = asyncio.Event()

    async def on_connected(self, nc: NATS) -> None:
        """Runtime hook: NATS is up and the streams exist."""
        self._js = nc.jetstream()
        self._connected.set()

    async def on_event(self, msg: Msg) -> None:
        try:
            ev = audit_pb2.AuditEvent.FromString(msg.data)
        except DecodeError:
            # A poison message would be redelivered forever; drop it loudly instead.
            log.warning("audit_event_unreadable", subject=msg.subject)
            return
        ev.id = ev.id or _msg_id(msg)
        if not ev.id or not ev.type:
            log.warning("audit_event_incomplete", subject=msg.subject)
            return
        await self.audit.record_event(event_record(ev, self.clock.now()))

    async def on_alert(self, msg: Msg) -> None:
        try:
            alert = audit_pb2.Alert.FromString(msg.data)
        except DecodeError:
            log.warning("alert_unreadable", subject=msg.subject)
            return
        alert.id = alert.id or _msg_id(msg)
        if not alert.id:
            log.warning("alert_incomplete", subject=msg.subject)
            return
        await self.audit.record_alert(alert_record(alert, self.clock.now()))

    async def _consume(self, stop: asyncio.Event, *, stream: str, subject: str, durable: str, handler: Handler) -> None:
        await self._connected.wait()  # the runtime cancels this task on stop
        assert self._js is not None
        await nats_bus.consume(self._js, stream=stream, subject=subject, durable=durable, handler=handler, stop=stop)

    async def consume_events(self, stop: asyncio.Event) -> None:
        await self._consume(
            stop,
            stream="AUDIT",
            subject=f"{nats_bus.AUDIT_SUBJECT_PREFIX}>",
            durable=EVENTS_DURABLE,
            handler=self.on_event,
        )

    async def consume_alerts(self, stop: asyncio.Event) -> None:
        await self._consume(
            stop, stream="ALERTS", subject=nats_bus.ALERTS_SUBJECT, durable=ALERTS_DURABLE, handler=self.on_alert
        )
