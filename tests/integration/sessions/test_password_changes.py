"""sessions' consumer of identity's `password.reset` / `password.changed` events: the backstop
for a gateway whose revocation after the password's commit failed. It revokes what that call
would have (every older session for a reset, all but the changing one for a change), never a
session created after the event, and a redelivery changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.clock import FrozenClock
from deelrx_kit.grpc_server import channel
from deploy.local import infra
from services.sessions.main import bootstrap
from services.sessions.password_changes import DURABLE
from tests.integration.harness import eventually, make_settings


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[str]:
    # A NATS server of its own: the durable's name is the one every sessions service uses, and
    # a consumer shared with another test's service would hand it events of this one.
    server = infra.start_nats(tmp_path / "nats")
    try:
        yield server.url
    finally:
        server.stop()


@dataclass
class Sessions:
    stub: sessions_pb2_grpc.SessionsServiceStub
    clock: FrozenClock
    nc: Client
    js: JetStreamContext

    async def login(self, user_id: str) -> str:
        created = await self.stub.CreateSession(
            sessions_pb2.CreateSessionRequest(
                context=common_pb2.RequestContext(request_id="req_login", client_ip="203.0.113.7"),
                user_id=user_id,
                team_id="tm_a",
                amr=["pwd"],
            )
        )
        return str(created.session.id)

    async def revoked(self, session_id: str) -> bool:
        got = await self.stub.GetSession(sessions_pb2.GetSessionRequest(session_id=session_id))
        return bool(got.session.revoked)

    async def publish(self, event: audit_pb2.AuditEvent) -> None:
        await self.js.publish(subject_for(event), event.SerializeToString(), headers={"Nats-Msg-Id": event.id})

    async def pending(self) -> int:
        """Events the durable has not acknowledged yet (delivered or not)."""
        try:
            info = await self.js.consumer_info("AUDIT", DURABLE)
        except NotFoundError:  # the service has not created it yet
            return -1
        return int(info.num_pending + info.num_ack_pending)


@pytest.fixture
async def sessions(tmp_path: Path, database_url: str, own_nats: str, redis_url: str) -> AsyncIterator[Sessions]:
    settings = make_settings(tmp_path, database_url, own_nats, redis_url)
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    rt = bootstrap(settings, grpc_port=0, clock=clock)
    await rt.start()
    chan = channel(f"127.0.0.1:{rt.grpc.port}")
    nc = await nats.connect(own_nats)
    try:
        js = nc.jetstream()
        await nats_bus.ensure_streams(js)
        yield Sessions(sessions_pb2_grpc.SessionsServiceStub(chan), clock, nc, js)
    finally:
        await nc.close()
        await chan.close()
        await rt.stop()


def _password_event(kind: str, user_id: str, at: datetime, session_id: str = "") -> audit_pb2.AuditEvent:
    # As identity stages it: the user acts on their own account, from the request's context.
    ctx = common_pb2.RequestContext(request_id="req_pw", client_ip="198.51.100.4", session_id=session_id)
    return new_event(kind, source="identity", now=at, context=ctx, actor_user_id=user_id, target=("user", user_id))


async def test_a_reset_revokes_the_older_sessions_and_not_a_later_login(sessions: Sessions) -> None:
    stolen, laptop = await sessions.login("usr_victim"), await sessions.login("usr_victim")
    bystander = await sessions.login("usr_other")
    reset_at = sessions.clock.now()
    sessions.clock.advance(seconds=1)
    fresh = await sessions.login("usr_victim")  # with the new password, before the event arrives
    feed = await sessions.nc.subscribe("sessions.revoked")

    event = _password_event("password.reset", "usr_victim", reset_at)
    await sessions.publish(event)
    await eventually(lambda: sessions.revoked(stolen), what="the session made before the reset revoked")
    assert await sessions.revoked(laptop)
    assert not await sessions.revoked(fresh)
    assert not await sessions.revoked(bystander)

    # The gateways learn at once, from the usual notice.
    notice = await _next_notice(feed)
    assert notice.user_id == "usr_victim" and sorted(notice.session_ids) == sorted([stolen, laptop])
    assert notice.reason == "password_reset"  # as the gateway's own call says

    # Delivered again (a redelivery, under another message id): nothing more, no failure.
    again = audit_pb2.AuditEvent()
    again.CopyFrom(event)
    again.id = event.id + "x"
    await sessions.publish(again)
    await eventually(lambda: _drained(sessions), what="the repeated event acknowledged, not failed")
    assert not await sessions.revoked(fresh)


async def test_a_change_keeps_the_changing_session(sessions: Sessions) -> None:
    changer, other = await sessions.login("usr_carol"), await sessions.login("usr_carol")
    changed_at = sessions.clock.now()
    sessions.clock.advance(seconds=1)
    fresh = await sessions.login("usr_carol")
    feed = await sessions.nc.subscribe("sessions.revoked")

    await sessions.publish(_password_event("password.changed", "usr_carol", changed_at, session_id=changer))
    await eventually(lambda: sessions.revoked(other), what="the other session revoked")
    notice = await _next_notice(feed)
    assert list(notice.session_ids) == [other] and notice.reason == "password_changed"
    await eventually(lambda: _drained(sessions), what="the event acknowledged")
    assert not await sessions.revoked(changer)
    assert not await sessions.revoked(fresh)


async def test_after_the_gateways_own_revocation_the_event_changes_nothing(sessions: Sessions) -> None:
    changer, other = await sessions.login("usr_dan"), await sessions.login("usr_dan")
    changed_at = sessions.clock.now()
    # The gateway's call succeeded, as it usually does.
    direct = await sessions.stub.RevokeSessions(
        sessions_pb2.RevokeSessionsRequest(
            context=common_pb2.RequestContext(request_id="req_pw"),
            user_id="usr_dan",
            except_session_id=changer,
            reason="password_changed",
        )
    )
    assert direct.revoked == 1
    failed = _password_event("password.changed", "usr_dan", changed_at)
    failed.outcome = "failure"  # not a change: never a reason to revoke
    await sessions.publish(failed)
    await sessions.publish(_password_event("password.changed", "usr_dan", changed_at, session_id=changer))
    await eventually(lambda: _drained(sessions), what="both events acknowledged, not failed")
    assert not await sessions.revoked(changer)
    assert await sessions.revoked(other)


async def _drained(sessions: Sessions) -> bool:
    return await sessions.pending() == 0


async def _next_notice(feed: Subscription) -> sessions_pb2.SessionRevoked:
    """The next revocation notice, past the heartbeats (empty notices) sent on the same subject."""
    while True:
        notice = sessions_pb2.SessionRevoked.FromString((await feed.next_msg(timeout=10)).data)
        if notice.session_ids:
            return notice
