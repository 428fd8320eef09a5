"""The detector on NATS: audit events in (durable "detector"), alerts out, and the alerts
read back for the automatic responses (durable "detector-responses").

Alerts go to `security.alerts` and their `security.alert_raised` audit event straight to
JetStream (the detector has no database); both carry derived ids as Nats-Msg-Id, so a
replay or a second detector does not double them. The responses read the alerts from the
ALERTS stream rather than run where they are raised: a slow or unreachable identity, sessions
or rbac then holds up the responses only, never the detection of later events.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import nats_bus, timestamps
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.clock import Clock
from services.detector.app import Detector
from services.detector.domain.rules import (
    MEMBER_JOINED,
    REFRESH_GRACE_REPLAY,
    ROLES_UPDATED,
    Observation,
    RaisedAlert,
    alert_raised_event_id,
)
from services.detector.ports import AlertResponses

log = structlog.get_logger(__name__)

DURABLE = "detector"
RESPONSES_DURABLE = "detector-responses"


def _detail(ev: audit_pb2.AuditEvent, name: str) -> Any:
    value = ev.details.fields.get(name)
    if value is None:
        return None
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return value.bool_value
    if kind == "string_value":
        return value.string_value
    if kind == "list_value":
        return [v.string_value for v in value.list_value.values if v.WhichOneof("kind") == "string_value"]
    return None


def observation(ev: audit_pb2.AuditEvent, received_at: datetime) -> Observation:
    target_user = ev.target.id if ev.target.type == "user" else ""
    # Membership events concern their target; the others the acting account.
    user_id = target_user if ev.type.startswith("member.") else (ev.actor.user_id or target_user)
    to_role = _detail(ev, "to_role") or _detail(ev, "role") or ""
    granted = _detail(ev, "added") if ev.type == ROLES_UPDATED else None
    return Observation(
        id=ev.id,
        time=timestamps.to_datetime_or(ev.time, received_at) if ev.HasField("time") else received_at,
        type=ev.type,
        team_id=ev.team_id,
        user_id=user_id,
        subject_hash=ev.subject_hash,
        ip=ev.actor.ip,
        new_device=_detail(ev, "new_device") is True,
        actor_user_id=ev.actor.user_id,
        session_id=ev.session_id,
        user_agent=ev.actor.user_agent[:200],
        to_role=to_role if isinstance(to_role, str) else "",
        granted=tuple(sorted(granted)) if isinstance(granted, list) else (),
        team_creation=ev.type == MEMBER_JOINED and _detail(ev, "operation_id") == ev.team_id,
        # A grace-interval replay is a client retrying, unless it came from another device or IP.
        other_device=ev.type == REFRESH_GRACE_REPLAY
        and (_detail(ev, "device") != _detail(ev, "session_device") or _detail(ev, "ip") != _detail(ev, "session_ip")),
    )


def security_alert(alert: RaisedAlert) -> audit_pb2.Alert:
    evidence = Struct()
    evidence.update(alert.evidence)
    return audit_pb2.Alert(
        id=alert.id,
        time=timestamps.to_timestamp(alert.time),
        rule=alert.rule,
        severity=alert.severity,
        team_id=alert.team_id,
        subject=alert.subject,
        evidence=evidence,
        status="open",
        user_ids=list(alert.user_ids),
        event_ids=list(alert.event_ids),
    )


def raised_alert(alert: audit_pb2.Alert) -> RaisedAlert:
    """`security_alert` reversed: the alert as the responses read it. Its time must survive
    exactly, since the ids of the responses' audit events derive from it. Numbers in the
    evidence come back as floats (a Struct holds doubles). ValueError when the alert lacks an
    id, a rule or a valid time."""
    if not alert.id or not alert.rule:
        raise ValueError("alert without id or rule")
    if not alert.HasField("time") or not timestamps.in_range(alert.time):
        raise ValueError("alert without a valid time")
    try:
        time = alert.time.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValueError("alert without a valid time") from None
    return RaisedAlert(
        id=alert.id,
        rule=alert.rule,
        severity=alert.severity,
        subject=alert.subject,
        time=time,
        team_id=alert.team_id,
        user_ids=tuple(alert.user_ids),
        event_ids=tuple(alert.event_ids),
        evidence=json_format.MessageToDict(alert.evidence),
    )


def alert_raised_event(alert: RaisedAlert, clock: Clock) -> audit_pb2.AuditEvent:
    ev = new_event(
        "security.alert_raised",
        source="detector",
        now=clock.now(),
        team_id=alert.team_id,
        target=("alert", alert.id),
        details={"rule": alert.rule, "severity": alert.severity, "subject": alert.subject},
    )
    ev.id = alert_raised_event_id(alert)
    return ev


class JetStreamAlertSink:
    """Publishes with retries until JetStream acknowledges (or the service stops)."""

    def __init__(self, clock: Clock, stop: asyncio.Event) -> None:
        self.clock = clock
        self.stop = stop
        self.js: JetStreamContext | None = None

    async def record(self, event: audit_pb2.AuditEvent) -> None:
        """An audit event of the detector's own (it has no outbox: published until acknowledged)."""
        await self._publish(subject_for(event), event.SerializeToString(), event.id)

    async def publish(self, alert: RaisedAlert) -> None:
        event = alert_raised_event(alert, self.clock)
        await self._publish(nats_bus.ALERTS_SUBJECT, security_alert(alert).SerializeToString(), alert.id)
        await self._publish(subject_for(event), event.SerializeToString(), event.id)

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        backoff = 0.1
        while True:
            try:
                if self.js is None:
                    raise ConnectionError("NATS not connected")
                await self.js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id}, timeout=5)
                return
            except Exception as exc:
                if self.stop.is_set():
                    raise
                log.warning("alert_publish_retry", subject=subject, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


class AuditEventFeed:
    def __init__(self, detector: Detector, sink: JetStreamAlertSink) -> None:
        self.detector = detector
        self.sink = sink

    async def on_connected(self, nc: NATS) -> None:
        """Runtime hook: alerts are published on this connection."""
        self.sink.js = nc.jetstream()

    async def on_event(self, msg: Msg) -> None:
        try:
            ev = audit_pb2.AuditEvent.FromString(msg.data)
        except DecodeError:
            raise nats_bus.PoisonMessage("unreadable audit event") from None
        if not ev.id:
            raise nats_bus.PoisonMessage("audit event without id")
        if self.detector.ruleset.reads(ev.type, session_id=ev.session_id):
            await self.detector.observe(observation(ev, self.sink.clock.now()))


class AlertResponsesFeed:
    """The alerts of `security.alerts`, each open one answered with its rule's responses.

    A response that fails raises, so the alert is redelivered (after the nak delays) and
    dead-lettered after max_deliver; responses are idempotent per alert, and the alert id as
    Nats-Msg-Id keeps a re-raised alert out of the stream within the duplicate window.
    """

    def __init__(self, responses: AlertResponses) -> None:
        self.responses = responses

    async def on_alert(self, msg: Msg) -> None:
        try:
            alert = audit_pb2.Alert.FromString(msg.data)
        except DecodeError:
            raise nats_bus.PoisonMessage("unreadable alert") from None
        if alert.status != "open":
            # Only the detector publishes here, always "open"; triage changes stay in audit.
            log.info("alert_not_open_skipped", alert_id=alert.id, status=alert.status)
            return
        try:
            raised = raised_alert(alert)
        except ValueError as exc:
            raise nats_bus.PoisonMessage(str(exc)) from None
        await self.responses.respond(raised)
