"""JetStream consumers that feed the audit log: AUDIT events and ALERTS."""

from __future__ import annotations

import structlog
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from deelrx.audit.v1 import audit_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.nats_bus import PoisonMessage
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

    async def on_event(self, msg: Msg) -> None:
        try:
            ev = audit_pb2.AuditEvent.FromString(msg.data)
        except DecodeError:
            # Redelivering would not help: kept in the dead-letter stream instead.
            raise PoisonMessage("unreadable audit event") from None
        ev.id = ev.id or _msg_id(msg)
        if not ev.id or not ev.type:
            raise PoisonMessage("audit event without id or type")
        await self.audit.record_event(event_record(ev, self.clock.now()))

    async def on_events(self, msgs: list[Msg]) -> list[Msg]:
        """A fetched batch stored in one transaction; what cannot be read is handed back
        (to be dead-lettered one by one)."""
        records, leftovers = [], []
        now = self.clock.now()
        for msg in msgs:
            try:
                ev = audit_pb2.AuditEvent.FromString(msg.data)
            except DecodeError:
                leftovers.append(msg)
                continue
            ev.id = ev.id or _msg_id(msg)
            if not ev.id or not ev.type:
                leftovers.append(msg)
                continue
            records.append(event_record(ev, now))
        if records:
            await self.audit.record_events(records)
        return leftovers

    async def on_alert(self, msg: Msg) -> None:
        try:
            alert = audit_pb2.Alert.FromString(msg.data)
        except DecodeError:
            raise PoisonMessage("unreadable alert") from None
        alert.id = alert.id or _msg_id(msg)
        if not alert.id:
            raise PoisonMessage("alert without id")
        await self.audit.record_alert(alert_record(alert, self.clock.now()))
