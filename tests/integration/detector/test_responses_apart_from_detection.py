"""The responses run apart from detection: while sessions hangs (RevokeSession answers
nothing), the detector still raises the alerts of later attacks at once; once sessions
answers, the responses still pending are carried out.

The detector as bootstrap() wires it (its two durable consumers, Redis windows, NATS) and the
real sessions service, reached through a gRPC front that hangs until told to answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from nats.js.api import DeliverPolicy

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from services.detector.adapters.nats_events import DURABLE, RESPONSES_DURABLE
from services.detector.domain.rules import RULE_IDS
from services.detector.main import bootstrap as detector_bootstrap
from services.sessions.main import bootstrap as sessions_bootstrap
from tests.integration.harness import eventually, make_settings

# The responses' calls time out after 5 s: detection held up behind one would take that long.
PROMPT_SECONDS = 3.0


class HungSessions(sessions_pb2_grpc.SessionsServiceServicer):
    """sessions as the detector reaches it: while hung, RevokeSession never answers (the caller's
    deadline passes first); once answering, it is passed on to the real sessions service.
    (A port that accepts connections and says nothing is no test: gRPC gives up on it in
    a fraction of a second.)"""

    def __init__(self, real: sessions_pb2_grpc.SessionsServiceStub) -> None:
        self.real = real
        self.answering = asyncio.Event()
        self.hung_calls = 0

    async def RevokeSession(
        self, request: sessions_pb2.RevokeSessionRequest, context: Any
    ) -> sessions_pb2.RevokeSessionResponse:
        if not self.answering.is_set():
            self.hung_calls += 1
            await self.answering.wait()
        answer: sessions_pb2.RevokeSessionResponse = await self.real.RevokeSession(request, timeout=5)
        return answer


@dataclass
class World:
    js: Any
    sessions: sessions_pb2_grpc.SessionsServiceStub
    hung: HungSessions
    alerts: asyncio.Queue[tuple[audit_pb2.Alert, float]]
    responses: list[audit_pb2.AuditEvent]


@pytest.fixture
async def world(tmp_path: Path, nats_url: str, redis_url: str, nats_client: Any) -> AsyncIterator[World]:
    js = nats_client.jetstream()
    await nats_bus.ensure_streams(js)
    # This test's own consumers, from the streams' end (not what earlier tests published).
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    consumers = (
        ("AUDIT", f"{nats_bus.AUDIT_SUBJECT_PREFIX}>", DURABLE),
        ("ALERTS", nats_bus.ALERTS_SUBJECT, RESPONSES_DURABLE),
    )
    for stream, subject, name in consumers:
        config = nats_bus.with_filter(nats_bus.consumer_config(prefix + name), subject)
        config.deliver_policy = DeliverPolicy.NEW
        await js.add_consumer(stream, config=config)
    base = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}", nats_url, redis_url)
    sessions = sessions_bootstrap(base, grpc_port=0)
    await sessions.start()
    ch = channel(f"127.0.0.1:{sessions.grpc.port}")
    stub = sessions_pb2_grpc.SessionsServiceStub(ch)
    hung = HungSessions(stub)
    front = grpc.aio.server()
    sessions_pb2_grpc.add_SessionsServiceServicer_to_server(hung, front)
    front_port = front.add_insecure_port("127.0.0.1:0")
    await front.start()
    settings = base.model_copy(
        update={
            "sessions_addr": f"127.0.0.1:{front_port}",
            "nats_consumer_prefix": prefix,
            "detector_responses": json.dumps({**{r: [] for r in RULE_IDS}, "session_anomaly": ["revoke_session"]}),
        }
    )
    detector = detector_bootstrap(settings, grpc_port=0)
    await detector.start()
    alerts: asyncio.Queue[tuple[audit_pb2.Alert, float]] = asyncio.Queue()
    responses: list[audit_pb2.AuditEvent] = []
    loop = asyncio.get_running_loop()

    async def on_alert(msg: Any) -> None:
        await alerts.put((audit_pb2.Alert.FromString(msg.data), loop.time()))

    async def on_event(msg: Any) -> None:
        ev = audit_pb2.AuditEvent.FromString(msg.data)
        if ev.type == "security.response_taken":
            responses.append(ev)

    subs = [
        await nats_client.subscribe(nats_bus.ALERTS_SUBJECT, cb=on_alert),
        await nats_client.subscribe(f"{nats_bus.AUDIT_SUBJECT_PREFIX}>", cb=on_event),
    ]
    try:
        yield World(js, stub, hung, alerts, responses)
    finally:
        for sub in subs:
            await sub.unsubscribe()
        await detector.stop()
        await front.stop(0)
        await ch.close()
        await sessions.stop()
        for stream, _, name in consumers:
            with contextlib.suppress(Exception):
                await js.delete_consumer(stream, prefix + name)


async def _session(w: World) -> str:
    created = await w.sessions.CreateSession(
        sessions_pb2.CreateSessionRequest(
            context=common_pb2.RequestContext(request_id=new_id("req"), client_ip="203.0.113.7", user_agent="Firefox"),
            user_id=new_id("usr"),
        )
    )
    return str(created.session.id)


async def _attack(w: World, session_id: str) -> float:
    """The session used from two distant networks (session_anomaly); when it was published."""
    t = datetime.now(UTC)
    user = new_id("usr")
    for seconds, ip in ((0, "203.0.113.7"), (60, "198.51.100.40")):
        when = t + timedelta(seconds=seconds)
        ev = new_event("session.refreshed", source="test", now=when, actor_user_id=user, session_id=session_id)
        ev.actor.ip = ip
        await w.js.publish(subject_for(ev), ev.SerializeToString(), headers={"Nats-Msg-Id": ev.id})
    return asyncio.get_running_loop().time()


async def _alert_about(w: World, session_id: str) -> tuple[audit_pb2.Alert, float]:
    async def wait() -> tuple[audit_pb2.Alert, float]:
        while True:
            alert, at = await w.alerts.get()
            if alert.subject == f"session:{session_id}":
                return alert, at

    return await asyncio.wait_for(wait(), timeout=20)


async def _revoked(w: World, session_id: str) -> bool:
    return bool((await w.sessions.GetSession(sessions_pb2.GetSessionRequest(session_id=session_id))).session.revoked)


async def test_a_hung_sessions_service_holds_up_no_detection_and_the_revocation_follows(world: World) -> None:
    w = world
    first_session, second_session = await _session(w), await _session(w)

    await _attack(w, first_session)
    first, _ = await _alert_about(w, first_session)
    # Its revocation now hangs in sessions; a second attack meanwhile is detected at once.
    published = await _attack(w, second_session)
    second, raised_at = await _alert_about(w, second_session)

    assert (first.rule, second.rule) == ("session_anomaly", "session_anomaly")
    assert raised_at - published < PROMPT_SECONDS, f"detection waited {raised_at - published:.1f} s"
    assert w.hung.hung_calls >= 1 and not await _revoked(w, first_session)  # pending, not lost

    w.hung.answering.set()
    await eventually(lambda: _revoked(w, first_session), timeout=60, what="the first session revoked")
    await eventually(lambda: _revoked(w, second_session), timeout=60, what="the second session revoked")

    def recorded() -> set[tuple[str, str, str]]:
        ours = (first.id, second.id)
        return {
            (e.details["alert_id"], e.details["action"], e.target.id)
            for e in w.responses
            if e.details["alert_id"] in ours
        }

    expected = {(first.id, "revoke_session", first_session), (second.id, "revoke_session", second_session)}
    assert await eventually(recorded, lambda found: found == expected, timeout=15, what="both responses recorded")
