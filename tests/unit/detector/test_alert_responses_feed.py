"""The responses read the alerts back from `security.alerts`: the alert survives the trip through
its protobuf with every field the responses use, only open alerts are answered, an unreadable or
incomplete alert is poison, and a failing service fails the delivery (so it comes back)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import grpc
import pytest

from deelrx.audit.v1 import audit_pb2
from deelrx_kit.nats_bus import PoisonMessage
from services.detector.adapters.nats_events import raised_alert, security_alert
from services.detector.domain.rules import RaisedAlert
from tests.unit.detector.fakes import T0, DetectorWorld, alert_message

ALERT = RaisedAlert(
    id="alr_01J0000000000000000000000",
    rule="credential_stuffing",
    severity="high",
    subject="user:usr_1",
    time=T0 + timedelta(microseconds=123_456),  # the responses' event ids derive from it
    team_id="tm_1",
    user_ids=("usr_1", "usr_2"),
    event_ids=("evt_1", "evt_2", "evt_3"),
    evidence={"count": 5, "ips": ["198.51.100.1", "198.51.100.2"], "accounts": {"usr_1": {"count": 3}}},
)


def read_back(alert: RaisedAlert) -> RaisedAlert:
    return raised_alert(audit_pb2.Alert.FromString(security_alert(alert).SerializeToString()))


def test_an_alert_read_back_from_the_stream_is_the_alert_raised() -> None:
    back = read_back(ALERT)

    assert back == ALERT  # every field, the time to the microsecond
    assert (back.time - T0).microseconds == 123_456
    bare = replace(ALERT, team_id="", user_ids=(), event_ids=(), evidence={})
    assert read_back(bare) == bare


@pytest.mark.parametrize("missing", ["id", "rule", "time"])
def test_an_alert_without_id_rule_or_time_cannot_be_read_back(missing: str) -> None:
    message = security_alert(ALERT)
    message.ClearField(missing)

    with pytest.raises(ValueError):
        raised_alert(message)


def world() -> DetectorWorld:
    w = DetectorWorld()
    w.rbac.teams = {"tm_1": {"usr_1": "staff", "usr_o": "owner"}}
    return w


async def test_an_open_alert_gets_its_rules_responses() -> None:
    w = world()

    await w.feed.on_alert(alert_message(security_alert(ALERT)))

    assert [(lock.user_id, lock.alert_id) for lock in w.identity.locks] == [("usr_1", ALERT.id)]
    assert [m.user_id for m in w.identity.mfa] == ["usr_1"]
    assert [(n.team_id, list(n.owner_user_ids)) for n in w.identity.notices] == [("tm_1", ["usr_o"])]
    assert w.responses_taken() == [
        ("lock_account", "user", "usr_1"),
        ("require_mfa", "user", "usr_1"),
        ("notify_owners", "team", "tm_1"),
    ]


@pytest.mark.parametrize("status", ["acknowledged", "resolved", ""])
async def test_an_alert_that_is_not_open_gets_no_response(status: str) -> None:
    w = world()
    message = security_alert(ALERT)
    message.status = status

    await w.feed.on_alert(alert_message(message))  # returns: acknowledged, not redelivered

    assert (w.identity.locks, w.identity.mfa, w.identity.notices, w.sink.events) == ([], [], [], [])


@pytest.mark.parametrize("missing", ["id", "rule", "time"])
async def test_an_unreadable_or_incomplete_alert_is_poison(missing: str) -> None:
    w = world()
    with pytest.raises(PoisonMessage):
        await w.feed.on_alert(alert_message(b"\x0a\xff"))  # a length beyond the payload
    message = security_alert(ALERT)
    message.ClearField(missing)

    with pytest.raises(PoisonMessage):
        await w.feed.on_alert(alert_message(message))

    assert w.identity.locks == [] and w.sink.events == []


async def test_a_failing_service_fails_the_delivery_and_the_redelivery_records_the_same_events() -> None:
    w = world()
    w.identity.fail_with = grpc.StatusCode.UNAVAILABLE

    with pytest.raises(grpc.aio.AioRpcError):  # the consumer naks it: delivered again later
        await w.feed.on_alert(alert_message(security_alert(ALERT)))

    w.identity.fail_with = None
    await w.feed.on_alert(alert_message(security_alert(ALERT)))
    first = [e.id for e in w.sink.events]
    await w.feed.on_alert(alert_message(security_alert(ALERT)))  # e.g. its ack was lost
    # The same derived ids: the stream's dedup (Nats-Msg-Id) and audit keep one of each.
    assert [e.id for e in w.sink.events] == first * 2 and len(set(first)) == 3
