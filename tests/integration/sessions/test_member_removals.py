"""sessions' consumer of rbac's `member.removed` events, on an installation upgraded from a
version that published them unpartitioned: the durable that version created, with its old
filter and an operator's tuning, reads the partitioned events once the service starts, and
still those an rbac not yet upgraded publishes in the old form."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.clock import FrozenClock
from deelrx_kit.grpc_server import channel
from deploy.local import infra
from services.sessions.main import bootstrap
from services.sessions.member_removals import DURABLE, SUBJECT
from tests.integration.harness import eventually, make_settings

OLD_FILTER = "audit.events.member.removed"  # what versions before the partitions created


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[str]:
    # A NATS server of its own: the durable's name is the one every sessions service uses.
    server = infra.start_nats(tmp_path / "nats")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def js(own_nats: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(own_nats)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


def _removed(user_id: str, team_id: str) -> audit_pb2.AuditEvent:
    return new_event("member.removed", source="rbac", now=datetime.now(UTC), team_id=team_id, target=("user", user_id))


async def test_the_old_consumer_reads_partitioned_removals_after_the_upgrade(
    tmp_path: Path, own_nats: str, js: JetStreamContext, redis_url: str
) -> None:
    await nats_bus.ensure_streams(js)
    old = nats_bus.with_filter(nats_bus.consumer_config(DURABLE, max_deliver=4), OLD_FILTER)  # tuned: 4
    await js.add_consumer("AUDIT", config=old)

    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}", own_nats, redis_url)
    rt = bootstrap(settings, grpc_port=0, clock=FrozenClock(datetime.now(UTC).replace(microsecond=0)))
    await rt.start()
    chan = channel(f"127.0.0.1:{rt.grpc.port}")
    stub = sessions_pb2_grpc.SessionsServiceStub(chan)
    try:
        sessions = {}
        for user in ("usr_bob", "usr_carol", "usr_dave"):
            created = await stub.CreateSession(
                sessions_pb2.CreateSessionRequest(
                    context=common_pb2.RequestContext(request_id="req_1", client_ip="203.0.113.7"),
                    user_id=user,
                    team_id="tm_a",
                    amr=["pwd"],
                )
            )
            sessions[user] = created.session.id
        bob, carol = _removed("usr_bob", "tm_a"), _removed("usr_carol", "tm_a")
        await js.publish(subject_for(bob), bob.SerializeToString(), headers={"Nats-Msg-Id": bob.id})
        assert subject_for(bob).startswith("audit.events.p")
        # An rbac replica of the older version, not yet rolled, publishes the old form.
        await js.publish(OLD_FILTER, carol.SerializeToString(), headers={"Nats-Msg-Id": carol.id})

        async def revoked(user: str) -> bool:
            got = await stub.GetSession(sessions_pb2.GetSessionRequest(session_id=sessions[user]))
            return got.session.revoked

        await eventually(lambda: revoked("usr_bob"), what="bob's team session revoked")
        await eventually(lambda: revoked("usr_carol"), what="carol's team session revoked")
        assert not await revoked("usr_dave")  # still a member

        stored = (await js.consumer_info("AUDIT", DURABLE)).config
        assert nats_bus.filter_list(stored.filter_subject, stored.filter_subjects) == nats_bus.filter_list(SUBJECT)
        assert stored.max_deliver == 4  # the operator's tuning stays
    finally:
        await chan.close()
        await rt.stop()
