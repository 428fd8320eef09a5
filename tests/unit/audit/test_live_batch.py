"""The live relay's batch is put together from the stored events' bytes: it must read back as
the StreamBatch the receivers expect, with what the store filled in (id, time)."""

from __future__ import annotations

from datetime import UTC, datetime

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import timestamps
from deelrx_kit.audit_events import new_event
from services.audit.adapters.nats_live import event_batch
from services.audit.adapters.protobuf_records import decode_event

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_a_batch_of_event_bytes_reads_back_as_the_stream_batch() -> None:
    events = [
        new_event("customer.updated", source="test", now=NOW, team_id="tm_1", details={"n": 1}),
        # Sizes whose length prefixes take two and three varint bytes.
        new_event("customer.updated", source="test", now=NOW, team_id="tm_1", details={"note": "x" * 300}),
        new_event("customer.updated", source="test", now=NOW, team_id="tm_1", details={"note": "y" * 20_000}),
        audit_pb2.AuditEvent(),
    ]
    batch = audit_pb2.StreamBatch.FromString(event_batch([e.SerializeToString() for e in events]))
    assert batch == audit_pb2.StreamBatch(items=[audit_pb2.StreamItem(event=e) for e in events])
    assert event_batch([]) == b""


def test_an_event_announced_carries_the_id_and_time_the_store_gave_it() -> None:
    bare = audit_pb2.AuditEvent(type="team.updated", team_id="tm_1")  # no id, no time
    decoded = decode_event(bare.SerializeToString(), "evt_from_header", received_at=NOW)
    assert decoded is not None
    record, payload = decoded
    announced = audit_pb2.AuditEvent.FromString(payload)
    assert announced.id == record.id == "evt_from_header"
    assert timestamps.to_datetime_or(announced.time, datetime.min) == record.time == NOW
    assert announced.type == "team.updated" and announced.team_id == "tm_1"

    whole = new_event("team.updated", source="test", now=NOW, team_id="tm_1")
    data = whole.SerializeToString()
    complete = decode_event(data, "evt_ignored", received_at=NOW)
    assert complete is not None and complete[1] == data  # nothing to fill in: the bytes as published
