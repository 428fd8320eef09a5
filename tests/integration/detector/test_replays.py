"""Scripted traces replayed through JetStream into the detector service (windows in Redis):
every attack raises its alert, the normal working day raises nothing above `low` (the two
new laptops are `new_device`), and the test asserts which alerts, not how many."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import nats_bus
from deelrx_kit.ids import new_id
from services.detector.domain.rules import RULE_IDS
from services.detector.main import bootstrap
from tests.integration.harness import make_settings

from . import traces


@pytest.fixture
async def detector(tmp_path: Path, nats_url: str, redis_url: str, nats_client) -> AsyncIterator[object]:
    settings = make_settings(
        tmp_path,
        nats_url=nats_url,
        redis_url=redis_url,
        # Detection only: the responses (and the services they call) have their own tests.
        detector_responses=json.dumps({rule: [] for rule in RULE_IDS}),
    )
    rt = bootstrap(settings, grpc_port=0)
    await rt.start()
    await nats_bus.ensure_streams(nats_client.jetstream())
    yield rt
    await rt.stop()


async def replay(nats_client, events: list[audit_pb2.AuditEvent], timeout: float = 30.0) -> list[audit_pb2.Alert]:
    """Publish the trace and a final marker; the alerts raised until the marker's arrives
    (one consumer takes events in order, so by then the whole trace was seen)."""
    marker_user = new_id("usr")
    marker = traces.ev("session.refresh_reuse_detected", 0, user=marker_user, ip="192.0.2.250")
    alerts: list[audit_pb2.Alert] = []
    done = asyncio.Event()

    async def on_alert(msg) -> None:
        a = audit_pb2.Alert.FromString(msg.data)
        if marker_user in a.user_ids:
            done.set()
        else:
            alerts.append(a)

    sub = await nats_client.subscribe(nats_bus.ALERTS_SUBJECT, cb=on_alert)
    js = nats_client.jetstream()
    for e in [*events, marker]:
        await js.publish(nats_bus.AUDIT_SUBJECT_PREFIX + e.type, e.SerializeToString(), headers={"Nats-Msg-Id": e.id})
    await asyncio.wait_for(done.wait(), timeout=timeout)
    await sub.unsubscribe()
    ids = {e.id for e in events}
    return [a for a in alerts if set(a.event_ids) & ids]


def raised(alerts: list[audit_pb2.Alert]) -> set[tuple[str, str]]:
    return {(a.rule, a.subject) for a in alerts}


async def test_attacks_raise_their_alerts(detector, nats_client) -> None:
    victim, guessed, robbed = new_id("usr"), new_id("usr"), new_id("usr")
    team, insider, promoted, exporter = new_id("tm"), new_id("usr"), new_id("usr"), new_id("usr")
    brute = await replay(nats_client, traces.brute_force(victim))
    assert raised(brute) == {("brute_force", f"user:{victim}")}
    spray = await replay(nats_client, traces.spray(ip="198.51.100.177"))
    assert raised(spray) == {("password_spray", "ip:198.51.100.177")}
    stuffing = await replay(nats_client, traces.stuffing(network="192.0.22"))
    assert raised(stuffing) == {("credential_stuffing", "net:192.0.22.0/24")}
    assert {a.severity for a in stuffing} == {"critical"}
    mfa = await replay(nats_client, traces.mfa_guessing(guessed))
    assert raised(mfa) == {("mfa_guessing", f"user:{guessed}")}
    stolen = await replay(nats_client, traces.stolen_refresh_token(robbed))
    assert raised(stolen) == {("refresh_token_reuse", f"user:{robbed}")}
    escalation = await replay(nats_client, traces.privilege_escalation(team, insider, promoted))
    assert raised(escalation) == {
        ("privilege_escalation", f"user:{promoted}"),
        ("privilege_escalation", f"role:{team}:staff"),
    }
    assert {a.team_id for a in escalation} == {team}
    exports = await replay(nats_client, traces.mass_export(team, exporter))
    assert raised(exports) == {("mass_export", f"user:{exporter}")}
    assert {a.team_id for a in exports} == {team} and set(exports[0].user_ids) == {exporter}


async def test_a_normal_working_day_raises_nothing_but_new_laptops(detector, nats_client) -> None:
    day = traces.normal_day(new_id("tm"))
    alerts = await replay(nats_client, day, timeout=60)
    assert {a.rule for a in alerts} <= {"new_device"}
    assert {a.severity for a in alerts} <= {"low"}
