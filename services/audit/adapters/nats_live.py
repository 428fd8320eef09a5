"""The live feed across audit replicas: whichever replica stores an event or alert announces
it on the core NATS subject `audit.live` (no stream keeps it), and every replica, itself
included, feeds what it hears into its LiveHub. So a live stream sees everything stored by
any replica. While NATS is unreachable a replica feeds its own hub directly; a client that
missed items resumes with its last position."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from deelrx.audit.v1 import audit_pb2
from services.audit.adapters.protobuf_records import alert_message, alert_record, event_message, event_record
from services.audit.domain.alerts import AlertRecord
from services.audit.domain.events import EventRecord
from services.audit.live_hub import LiveHub, LiveItem

log = structlog.get_logger(__name__)

LIVE_SUBJECT = "audit.live"


def _length_delimited(payload: bytes) -> bytes:
    """Field 1 of a message, holding `payload`: its tag, its length as a varint, the bytes."""
    size, prefix = len(payload), bytearray(b"\x0a")
    while size > 0x7F:
        prefix.append(size & 0x7F | 0x80)
        size >>= 7
    prefix.append(size)
    return bytes(prefix) + payload


def event_batch(payloads: Sequence[bytes]) -> bytes:
    """A serialized StreamBatch of these serialized AuditEvents: items (field 1) of
    StreamItems whose `event` (field 1) is each payload."""
    return b"".join(_length_delimited(_length_delimited(p)) for p in payloads)


class LiveRelay:
    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.nc: NATS | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def announce(self, items: Sequence[LiveItem]) -> None:
        """Called after a commit with what it stored (one message per batch)."""
        nc = self.nc
        if nc is None or not nc.is_connected:
            for item in items:
                self.hub.publish(item)
            return
        batch = audit_pb2.StreamBatch(
            items=[
                audit_pb2.StreamItem(alert=alert_message(i))
                if isinstance(i, AlertRecord)
                else audit_pb2.StreamItem(event=event_message(i))
                for i in items
            ]
        )
        task = asyncio.get_running_loop().create_task(self._send(nc, items, batch.SerializeToString()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def announce_events(self, records: Sequence[EventRecord], payloads: Sequence[bytes]) -> None:
        """Stored events, with the bytes of their messages: the batch is put together from
        them without building a message again (a large share of the storing replica's work
        otherwise). Receivers clip and default them as the store did."""
        nc = self.nc
        if nc is None or not nc.is_connected:
            for record in records:
                self.hub.publish(record)
            return
        task = asyncio.get_running_loop().create_task(self._send(nc, records, event_batch(payloads)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, nc: NATS, items: Sequence[LiveItem], payload: bytes) -> None:
        try:
            await nc.publish(LIVE_SUBJECT, payload)
        except Exception as exc:  # noqa: BLE001 - NATS went away: at least our own subscribers
            log.warning("live_announce_failed", error=str(exc))
            for item in items:
                self.hub.publish(item)

    async def on_connected(self, nc: NATS) -> None:
        await nc.subscribe(LIVE_SUBJECT, cb=self._heard)
        self.nc = nc

    async def _heard(self, msg: Msg) -> None:
        if not self.hub.subscriber_count:
            return  # nobody streams from this replica: nothing to decode
        try:
            batch = audit_pb2.StreamBatch.FromString(msg.data)
        except DecodeError:
            return
        now = datetime.now(UTC)
        for item in batch.items:
            kind = item.WhichOneof("item")
            if kind == "event":
                self.hub.publish(event_record(item.event, now))
            elif kind == "alert":
                self.hub.publish(alert_record(item.alert, now))
