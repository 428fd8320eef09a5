"""Two audit replicas against one PostgreSQL database share the AUDIT stream's partitions:
each partition (and so each chain) has one holder at a time, a replica joining or leaving
mid-stream hands partitions over without losing, doubling or forking anything, and a replica
whose lease passed to another stores nothing more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from sqlalchemy import func, select

from deelrx_kit import nats_bus
from deelrx_kit.audit_events import subject_for
from deelrx_kit.audit_partitions import PARTITIONS
from deelrx_kit.clock import SystemClock
from deelrx_kit.db import create_engine, migrate, session_factory, transaction
from deelrx_kit.ids import new_id
from deploy.local import infra
from services.audit.adapters import partition_sql, sql
from services.audit.adapters.protobuf_records import event_record
from services.audit.app import LeaseLost, PartitionFence
from services.audit.main import audit_log, bootstrap

from .conftest import event, settings_for

MIGRATIONS = Path(__file__).parents[3] / "services" / "audit" / "migrations"
EVENTS = 3000
CHAINS = 40


async def _owners(database_url: str) -> dict[int, str]:
    engine = create_engine(database_url, "audit")
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(partition_sql.partition_leases))).all()
    finally:
        await engine.dispose()
    now = datetime.now(UTC)
    return {r.partition: r.owner for r in rows if r.expires_at >= now}


async def _stored(database_url: str, teams: list[str]) -> int:
    engine = create_engine(database_url, "audit")
    try:
        async with engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sql.events).where(sql.events.c.team_id.in_(teams)))
    finally:
        await engine.dispose()
    return int(n or 0)


async def _until(probe, done, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if done(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_replicas_share_the_partitions_and_hand_them_over_mid_stream(
    tmp_path: Path, database_url: str
) -> None:
    server = infra.start_nats(tmp_path / "nats")  # its own: the partitions' consumers are not shared
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await nats_bus.ensure_streams(js)
    settings = settings_for(tmp_path, database_url, server.url).model_copy(
        update={"audit_partition_lease_seconds": 5.0}
    )
    first = bootstrap(settings, grpc_port=0)
    await first.start()
    second = None
    teams = [new_id("tm") for _ in range(CHAINS)]
    evs = [event("customer.updated", team_id=teams[i % CHAINS], details={"n": i}) for i in range(EVENTS)]
    try:
        alone = await _until(lambda: _owners(database_url), lambda o: len(o) == PARTITIONS)
        assert len(alone) == PARTITIONS and len(set(alone.values())) == 1

        async def publish(batch: list) -> None:  # type: ignore[type-arg]
            acks = [
                await js.publish_async(subject_for(e), e.SerializeToString(), headers={"Nats-Msg-Id": e.id})
                for e in batch
            ]
            await asyncio.gather(*acks)

        await publish(evs[: EVENTS // 2])
        second = bootstrap(settings, grpc_port=0)  # joins while the first is storing
        await second.start()
        await publish(evs[EVENTS // 2 :])
        shared = await _until(
            lambda: _owners(database_url),
            lambda o: len(o) == PARTITIONS and sorted(list(o.values()).count(r) for r in set(o.values())) == [8, 8],
        )
        # Every partition has exactly one holder, and each replica holds its half.
        assert len(shared) == PARTITIONS
        assert sorted(list(shared.values()).count(r) for r in set(shared.values())) == [8, 8]
        assert await _until(lambda: _stored(database_url, teams), lambda n: n >= EVENTS) == EVENTS
        # The first replica leaves: the second takes every partition over.
        await first.stop()
        after = await _until(lambda: _owners(database_url), lambda o: len(set(o.values())) == 1 and len(o) == 16)
        assert len(after) == PARTITIONS and len(set(after.values())) == 1
        extra = [event("customer.updated", team_id=t) for t in teams]
        await publish(extra)
        assert await _until(lambda: _stored(database_url, teams), lambda n: n >= EVENTS + CHAINS) == EVENTS + CHAINS

        engine = create_engine(database_url, "audit")
        reader = audit_log(session_factory(engine), SystemClock())
        for team in teams:
            check = await reader.verify_chain(team_id=team)
            assert check.ok and check.events_checked == EVENTS // CHAINS + 1
        # Each chain holds exactly the events published for it, each once.
        async with reader.sessionmaker() as s:
            rows = await sql.chain_events(s, f"team:{teams[0]}", after_seq=0, up_to_seq=10_000, limit=10_000)
        published = [e.id for e in [*evs, *extra] if e.team_id == teams[0]]
        assert sorted(r.event.id for r in rows) == sorted(published)
        await engine.dispose()
    finally:
        if second is not None:
            await second.stop()
        await first.stop()
        await nc.close()
        server.stop()


@pytest.mark.parametrize("database_url", ["postgres", "sqlite"], indirect=True)
async def test_a_replica_whose_lease_passed_on_stores_nothing(database_url: str) -> None:
    await migrate(MIGRATIONS, database_url, "audit")
    engine = create_engine(database_url, "audit")
    sessions = session_factory(engine)
    audit = audit_log(sessions, SystemClock())
    now = datetime.now(UTC)
    async with transaction(sessions) as s:
        assert await partition_sql.claim(s, 3, "rep_old", now - timedelta(seconds=30), now - timedelta(seconds=1))
    async with transaction(sessions) as s:  # the old holder's lease lapsed: another takes it
        assert await partition_sql.claim(s, 3, "rep_new", now, now + timedelta(seconds=30))
        assert not await partition_sql.claim(s, 3, "rep_old", now, now + timedelta(seconds=30))
    team = new_id("tm")
    record = event_record(event("customer.updated", team_id=team), now)
    with pytest.raises(LeaseLost):
        await audit.record_events([record], fence=PartitionFence("rep_old", frozenset({3})))
    assert await _stored(database_url, [team]) == 0
    stored = await audit.record_events([record], fence=PartitionFence("rep_new", frozenset({3})))
    assert len(stored) == 1 and await _stored(database_url, [team]) == 1
    await engine.dispose()
