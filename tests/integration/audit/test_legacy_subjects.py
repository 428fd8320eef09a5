"""Events an older version published on the unpartitioned subjects (`audit.events.<type>`):
the AUDIT stream still takes them, the legacy drain stores them in order into their chains,
its filter never matches a partitioned subject, and it stores only while its replica holds
partition 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import subject_for
from deelrx_kit.clock import SystemClock
from deelrx_kit.db import create_engine, migrate, session_factory, transaction
from deelrx_kit.ids import new_id
from deploy.local import infra
from services.audit.adapters import partition_sql, sql
from services.audit.adapters.nats_legacy import DRAIN_PARTITION, LEGACY_DURABLE, LEGACY_FILTER, LegacyDrain
from services.audit.main import audit_log
from tests.integration.harness import eventually

from .conftest import AuditHarness, event, publish

MIGRATIONS = Path(__file__).parents[3] / "services" / "audit" / "migrations"


async def _chain_ids(database_url: str, team: str) -> list[str]:
    engine = create_engine(database_url, "audit")
    try:
        async with session_factory(engine)() as s:
            rows = await sql.chain_events(s, f"team:{team}", after_seq=0, up_to_seq=1000, limit=1000)
    finally:
        await engine.dispose()
    return [r.event.id for r in rows]


def _legacy_subject(ev: audit_pb2.AuditEvent) -> str:
    return nats_bus.AUDIT_SUBJECT_PREFIX + ev.type  # what versions before the partitions published


async def test_events_on_the_old_subjects_are_stored_in_order_and_chained(audit: AuditHarness) -> None:
    team = new_id("tm")
    old = [event(t, team_id=team) for t in ("member.invited", "member.joined", "member.role_changed")]
    for ev in old:
        ack = await audit.js.publish(_legacy_subject(ev), ev.SerializeToString(), headers={"Nats-Msg-Id": ev.id})
        assert ack.stream == "AUDIT"  # the stream still takes the old form
    await audit.wait_team_events(team, 3)
    assert await _chain_ids(audit.database_url, team) == [e.id for e in old]  # chained in publish order
    # After the drain, the same chain goes on through its partition.
    new = event("team.updated", team_id=team)
    await publish(audit.js, new)
    assert (await audit.wait_team_events(team, 4))[0].id == new.id
    check = await audit.stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=team))
    assert (check.ok, check.events_checked) == (True, 4)
    assert await _chain_ids(audit.database_url, team) == [*(e.id for e in old), new.id]
    # A redelivered legacy event (same id) is not stored twice.
    await audit.js.publish(_legacy_subject(old[0]), old[0].SerializeToString(), headers={"Nats-Msg-Id": new_id("req")})
    marker = event("member.removed", team_id=team)
    await audit.js.publish(_legacy_subject(marker), marker.SerializeToString(), headers={"Nats-Msg-Id": marker.id})
    after = await audit.wait_team_events(team, 5)
    assert sorted(e.id for e in after) == sorted([*(e.id for e in old), new.id, marker.id])


async def test_the_legacy_filter_matches_only_the_old_form(tmp_path: Path) -> None:
    server = infra.start_nats(tmp_path / "nats")
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        await nats_bus.ensure_streams(js)
        team = new_id("tm")
        partitioned = [event("team.updated", team_id=team), event("auth.login_failed", user_id=new_id("usr"))]
        for ev in partitioned:
            await js.publish(subject_for(ev), ev.SerializeToString())
        legacy = event("team.updated", team_id=team)
        await js.publish(_legacy_subject(legacy), legacy.SerializeToString())
        await js.add_consumer("AUDIT", config=ConsumerConfig(durable_name="probe", filter_subject=LEGACY_FILTER))
        info = await js.consumer_info("AUDIT", "probe")
        assert info.num_pending == 1
        sub = await js.pull_subscribe_bind(durable="probe", stream="AUDIT")
        [msg] = await sub.fetch(1, timeout=5)
        assert msg.subject == _legacy_subject(legacy)
    finally:
        await nc.close()
        server.stop()


async def test_only_the_holder_of_partition_0_drains(tmp_path: Path) -> None:
    server = infra.start_nats(tmp_path / "nats")
    nc = await nats.connect(server.url)
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await migrate(MIGRATIONS, url, "audit")
    engine = create_engine(url, "audit")
    sessions = session_factory(engine)
    drain = LegacyDrain(audit_log(sessions, SystemClock()), nc.jetstream, owner="rep_me", announce=lambda r, m: None)
    try:
        js = nc.jetstream()
        await nats_bus.ensure_streams(js)
        now = datetime.now(UTC)
        async with transaction(sessions) as s:
            assert await partition_sql.claim(s, DRAIN_PARTITION, "rep_other", now, now + timedelta(minutes=5))
        team = new_id("tm")
        ev = event("member.joined", team_id=team)
        await js.publish(_legacy_subject(ev), ev.SerializeToString(), headers={"Nats-Msg-Id": ev.id})
        await drain.start()

        # Without the lease the batch goes back to the stream, unstored.
        async def redelivered() -> int:
            try:
                return (await js.consumer_info("AUDIT", LEGACY_DURABLE)).num_redelivered or 0
            except NotFoundError:  # not created yet
                return 0

        await eventually(redelivered, lambda n: n >= 1)
        assert await _chain_ids(url, team) == []
        async with transaction(sessions) as s:
            await partition_sql.release(s, [DRAIN_PARTITION], "rep_other")
            assert await partition_sql.claim(s, DRAIN_PARTITION, "rep_me", now, now + timedelta(minutes=5))
        await eventually(lambda: _chain_ids(url, team), lambda ids: ids == [ev.id], timeout=30)
    finally:
        await drain.stop()
        await engine.dispose()
        await nc.close()
        server.stop()
