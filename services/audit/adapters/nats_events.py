"""The JetStream consumer of ALERTS that feeds the audit log (events come through the stream
partitions: adapters/nats_partitions.py)."""

from __future__ import annotations

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from deelrx.audit.v1 import audit_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.nats_bus import PoisonMessage
from services.audit.adapters.protobuf_records import alert_record
from services.audit.app import AuditLog

ALERTS_DURABLE = "audit-alerts"


def _msg_id(msg: Msg) -> str:
    return (msg.headers or {}).get("Nats-Msg-Id", "")


class AuditFeed:
    def __init__(self, audit: AuditLog, clock: Clock) -> None:
        self.audit = audit
        self.clock = clock

    async def on_alert(self, msg: Msg) -> None:
        try:
            alert = audit_pb2.Alert.FromString(msg.data)
        except DecodeError:
            raise PoisonMessage("unreadable alert") from None
        alert.id = alert.id or _msg_id(msg)
        if not alert.id:
            raise PoisonMessage("alert without id")
        await self.audit.record_alert(alert_record(alert, self.clock.now()))
