"""An alert read back from `security.alerts` survives the trip through its protobuf with every
field the responses use."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from deelrx.audit.v1 import audit_pb2
from services.detector.adapters.nats_events import raised_alert, security_alert
from services.detector.domain.rules import RaisedAlert
from tests.unit.detector.fakes import T0

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
