"""Protobuf <-> audit records. Incoming values are clipped to the stored column sizes so an
oversized field from a buggy producer cannot wedge the consumer on one poison message."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import timestamps
from services.audit.domain.alerts import AlertRecord
from services.audit.domain.events import EventRecord

# An event as stored, and its message as others should see it (the published bytes, with the
# id and time the store filled in appended: parsing concatenated messages merges them).
Decoded = tuple[EventRecord, bytes]


def _clip(value: str, size: int) -> str:
    return value[:size]


def to_datetime(ts: Timestamp, default: datetime) -> datetime:
    if ts.seconds == 0 and ts.nanos == 0:
        return default
    return timestamps.to_datetime_or(ts, default)


def _value(v: Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        n = v.number_value
        if math.isinf(n) or math.isnan(n):
            raise ValueError("details hold a number JSON cannot carry")
        return n
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return _dict(v.struct_value)
    if kind == "list_value":
        return [_value(x) for x in v.list_value.values]
    return None


def _dict(struct: Struct) -> dict[str, Any]:
    """The same values as json_format.MessageToDict (numbers stay floats), several times
    faster: it runs for every stored event."""
    return {k: _value(v) for k, v in struct.fields.items()}


def _struct(values: dict[str, Any]) -> Struct:
    s = Struct()
    s.update(values)
    return s


def event_record(ev: audit_pb2.AuditEvent, received_at: datetime) -> EventRecord:
    return EventRecord(
        id=_clip(ev.id, 64),
        time=to_datetime(ev.time, received_at),
        type=_clip(ev.type, 100),
        team_id=_clip(ev.team_id, 64),
        actor_user_id=_clip(ev.actor.user_id, 64),
        actor_ip=_clip(ev.actor.ip, 64),
        actor_user_agent=_clip(ev.actor.user_agent, 512),
        target_type=_clip(ev.target.type, 64),
        target_id=_clip(ev.target.id, 128),
        outcome=_clip(ev.outcome, 32),
        details=_dict(ev.details),
        source=_clip(ev.source, 64),
        request_id=_clip(ev.request_id, 128),
        subject_hash=_clip(ev.subject_hash, 128),
        session_id=_clip(ev.session_id, 64),
    )


def decode_event(data: bytes, msg_id: str, received_at: datetime | None = None) -> Decoded | None:
    """An AuditEvent as published (its id from the message id when the body lacks one), as a
    record and as message bytes; None for what no retry can make storable (unreadable, no id
    or type)."""
    try:
        ev = audit_pb2.AuditEvent.FromString(data)
        filled = audit_pb2.AuditEvent()
        if not ev.id:
            ev.id = filled.id = msg_id
        if not ev.id or not ev.type:
            return None
        record = event_record(ev, received_at or datetime.now(UTC))
        if not ev.HasField("time"):
            filled.time.CopyFrom(timestamps.to_timestamp(record.time))
        return record, data + filled.SerializeToString() if filled.ByteSize() else data
    except (DecodeError, ValueError):
        return None


def decode_stream_message(data: bytes, headers: dict[str, str] | None) -> Decoded | None:
    """decode_event of a message from the AUDIT stream, its Nats-Msg-Id header as the fallback id."""
    return decode_event(data, (headers or {}).get("Nats-Msg-Id", ""))


def event_message(e: EventRecord) -> audit_pb2.AuditEvent:
    return audit_pb2.AuditEvent(
        id=e.id,
        time=timestamps.to_timestamp(e.time),
        type=e.type,
        team_id=e.team_id,
        actor=audit_pb2.Actor(user_id=e.actor_user_id, ip=e.actor_ip, user_agent=e.actor_user_agent),
        target=audit_pb2.Target(type=e.target_type, id=e.target_id),
        outcome=e.outcome,
        details=_struct(e.details),
        source=e.source,
        request_id=e.request_id,
        subject_hash=e.subject_hash,
        session_id=e.session_id,
    )


def alert_record(a: audit_pb2.Alert, received_at: datetime) -> AlertRecord:
    return AlertRecord(
        id=_clip(a.id, 64),
        time=to_datetime(a.time, received_at),
        rule=_clip(a.rule, 64),
        severity=_clip(a.severity, 16),
        team_id=_clip(a.team_id, 64),
        subject=_clip(a.subject, 200),
        evidence=_dict(a.evidence),
        status=_clip(a.status or "open", 16),
        user_ids=tuple(_clip(u, 64) for u in a.user_ids if u),
        event_ids=tuple(a.event_ids),
    )


def alert_message(a: AlertRecord) -> audit_pb2.Alert:
    message = audit_pb2.Alert(
        id=a.id,
        time=timestamps.to_timestamp(a.time),
        rule=a.rule,
        severity=a.severity,
        team_id=a.team_id,
        subject=a.subject,
        evidence=_struct(a.evidence),
        status=a.status,
        user_ids=list(a.user_ids),
        event_ids=list(a.event_ids),
        note=a.note,
        status_changed_by=a.status_changed_by,
    )
    if a.status_changed_at is not None:
        message.status_changed_at.CopyFrom(timestamps.to_timestamp(a.status_changed_at))
    return message
