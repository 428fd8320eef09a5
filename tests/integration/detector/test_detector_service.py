"""The detector consumes AUDIT from JetStream and raises alerts on `security.alerts`;
the audit service stores them where a team can list them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx.detector.v1 import detector_pb2, detector_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import new_event
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from services.audit.main import bootstrap as audit_bootstrap
from services.detector.domain.rules import RULE_IDS
from services.detector.main import bootstrap as detector_bootstrap
from tests.integration.harness import eventually, make_settings


@pytest.fixture
async def suite(tmp_path: Path, nats_url: str, redis_url: str, nats_client) -> AsyncIterator[tuple]:
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
        nats_url,
        redis_url,
        # Detection only: the responses (and the services they call) have their own tests.
        detector_responses=json.dumps({rule: [] for rule in RULE_IDS}),
    )
    detector = detector_bootstrap(settings, grpc_port=0)
    audit = audit_bootstrap(settings, grpc_port=0)
    await detector.start()
    await audit.start()
    js = nats_client.jetstream()
    await nats_bus.ensure_streams(js)
    channels = [channel(f"127.0.0.1:{rt.grpc.port}") for rt in (detector, audit)]
    try:
        yield (
            js,
            detector_pb2_grpc.DetectorServiceStub(channels[0]),
            audit_pb2_grpc.AuditServiceStub(channels[1]),
        )
    finally:
        for ch in channels:
            await ch.close()
        await audit.stop()
        await detector.stop()


def failed_login(user: str, ip: str, when: datetime) -> audit_pb2.AuditEvent:
    return new_event(
        "auth.login_failed", source="test", now=when, actor_user_id=user, outcome="failure", target=("user", user)
    )


async def test_failed_logins_raise_one_brute_force_alert(suite, nats_client) -> None:
    js, detector, audit = suite
    user, victim_of_reuse = new_id("usr"), new_id("usr")
    alerts: asyncio.Queue[audit_pb2.Alert] = asyncio.Queue()

    async def on_alert(msg) -> None:
        await alerts.put(audit_pb2.Alert.FromString(msg.data))

    sub = await nats_client.subscribe(nats_bus.ALERTS_SUBJECT, cb=on_alert)
    now = datetime.now(UTC)
    failures = [failed_login(user, "198.51.100.20", now + timedelta(seconds=i)) for i in range(12)]
    for ev in failures:
        ev.actor.ip = "198.51.100.20"
        await js.publish(
            nats_bus.AUDIT_SUBJECT_PREFIX + ev.type, ev.SerializeToString(), headers={"Nats-Msg-Id": ev.id}
        )
    # Redelivery past JetStream's dedup (other message ids) must not raise another alert...
    for ev in failures[:10]:
        await js.publish(
            nats_bus.AUDIT_SUBJECT_PREFIX + ev.type, ev.SerializeToString(), headers={"Nats-Msg-Id": new_id("req")}
        )
    # ...which we know once an alert about a later event has come through.
    marker = new_event("session.refresh_reuse_detected", source="test", now=now, actor_user_id=victim_of_reuse)
    await js.publish(
        nats_bus.AUDIT_SUBJECT_PREFIX + marker.type, marker.SerializeToString(), headers={"Nats-Msg-Id": marker.id}
    )

    mine: list[audit_pb2.Alert] = []

    async def collect() -> None:
        while True:
            a = await alerts.get()
            if user in a.user_ids or victim_of_reuse in a.user_ids:
                mine.append(a)
            if victim_of_reuse in a.user_ids:
                return

    await asyncio.wait_for(collect(), timeout=20)
    await sub.unsubscribe()
    brute = [a for a in mine if a.rule == "brute_force"]
    # One alert: the redelivered trigger may send it again (crash safety), under the same id,
    # which JetStream and the audit store drop.
    assert len({a.id for a in brute}) == 1
    alert = brute[0]
    assert alert.subject == f"user:{user}" and list(alert.user_ids) == [user]
    assert set(alert.event_ids) == {e.id for e in failures[:10]}
    assert alert.evidence["count"] == 10 and list(alert.evidence["ips"]) == ["198.51.100.20"]
    assert "password" not in str(alert)

    # The audit service stored it: a team with this user as a member sees it.
    async def listed() -> list[audit_pb2.Alert]:
        resp = await audit.ListAlerts(audit_pb2.ListAlertsRequest(team_id=new_id("tm"), member_user_ids=[user]))
        return list(resp.alerts)

    seen = await eventually(listed)
    assert [a.id for a in seen] == [alert.id]

    rules = await detector.ListRules(detector_pb2.ListRulesRequest())
    by_id = {r.id: r for r in rules.rules}
    assert (by_id["brute_force"].threshold, by_id["brute_force"].window_seconds) == (10, 300)
    assert "new_device" in by_id
