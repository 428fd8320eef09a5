"""Automatic responses: with `revoke_session` configured for session_anomaly, a session used
from two distant networks is revoked through the real sessions service once the alert is read
back from `security.alerts`, and the response is recorded as an audit event; without it,
nothing is revoked."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.aio.msg import Msg
from redis.asyncio import Redis

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.clock import SystemClock
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from services.detector.adapters.nats_events import AlertResponsesFeed, security_alert
from services.detector.adapters.redis_windows import RedisWindowStore
from services.detector.app import Detector
from services.detector.domain.rules import Observation, RaisedAlert, RuleSet
from services.detector.responses import DEFAULT_RESPONSES, Responses, parse_responses
from services.sessions.main import bootstrap
from tests.integration.harness import make_settings


class Collected:
    def __init__(self) -> None:
        self.alerts: list[RaisedAlert] = []
        self.events: list[audit_pb2.AuditEvent] = []

    async def publish(self, alert: RaisedAlert) -> None:
        self.alerts.append(alert)

    async def record(self, event: audit_pb2.AuditEvent) -> None:
        self.events.append(event)


@pytest.fixture
async def sessions(
    tmp_path: Path, nats_url: str, redis_url: str
) -> AsyncIterator[sessions_pb2_grpc.SessionsServiceStub]:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}", nats_url, redis_url)
    rt = bootstrap(settings, grpc_port=0)
    await rt.start()
    ch = channel(f"127.0.0.1:{rt.grpc.port}")
    yield sessions_pb2_grpc.SessionsServiceStub(ch)
    await ch.close()
    await rt.stop()


async def _session(stub: sessions_pb2_grpc.SessionsServiceStub, user: str) -> str:
    created = await stub.CreateSession(
        sessions_pb2.CreateSessionRequest(
            context=common_pb2.RequestContext(request_id="req_1", client_ip="203.0.113.7", user_agent="Firefox"),
            user_id=user,
        )
    )
    return created.session.id


def _used_from_two_networks(session_id: str, user: str) -> list[Observation]:
    t = datetime.now(UTC)
    return [
        Observation(
            id=new_id("evt"), time=t, type="session.refreshed", user_id=user, session_id=session_id, ip="203.0.113.7"
        ),
        Observation(
            id=new_id("evt"),
            time=t + timedelta(seconds=60),
            type="session.refreshed",
            user_id=user,
            session_id=session_id,
            ip="198.51.100.40",
        ),
    ]


async def _revoked(stub: sessions_pb2_grpc.SessionsServiceStub, session_id: str) -> bool:
    return (await stub.GetSession(sessions_pb2.GetSessionRequest(session_id=session_id))).session.revoked


@pytest.mark.parametrize("configured", [True, False])
async def test_session_anomaly_revokes_the_session_when_configured(sessions, redis_url: str, configured: bool) -> None:
    user = new_id("usr")
    session_id = await _session(sessions, user)
    sink = Collected()
    redis = Redis.from_url(redis_url)
    config = parse_responses('{"session_anomaly": ["revoke_session"]}' if configured else '{"session_anomaly": []}')
    detector = Detector(RuleSet(), RedisWindowStore(redis, prefix=f"t:{uuid.uuid4().hex}:"), sink)
    for obs in _used_from_two_networks(session_id, user):
        await detector.observe(obs)
    await redis.aclose()
    # The responses consumer reads what was published on security.alerts.
    feed = AlertResponsesFeed(Responses(config, sessions, sink.record, SystemClock()))
    for alert in sink.alerts:
        data = security_alert(alert).SerializeToString()
        await feed.on_alert(Msg(_client=None, subject=nats_bus.ALERTS_SUBJECT, data=data))
    assert [(a.rule, a.subject) for a in sink.alerts] == [("session_anomaly", f"session:{session_id}")]
    assert await _revoked(sessions, session_id) is configured
    responses = [e for e in sink.events if e.type == "security.response_taken"]
    if configured:
        [event] = responses
        assert (event.target.type, event.target.id) == ("session", session_id)
        assert event.details["action"] == "revoke_session" and event.details["alert_id"] == sink.alerts[0].id
    else:
        assert responses == []


def test_response_configuration_is_checked() -> None:
    assert parse_responses("") == DEFAULT_RESPONSES
    configured = parse_responses('{"brute_force": [], "new_device": ["require_mfa"]}')
    assert configured["brute_force"] == () and configured["new_device"] == ("require_mfa",)
    assert configured["credential_stuffing"] == DEFAULT_RESPONSES["credential_stuffing"]
    for bad in ('{"nope": ["revoke_session"]}', '{"session_anomaly": ["lock_the_world"]}', "[]"):
        with pytest.raises(ValueError):
            parse_responses(bad)
