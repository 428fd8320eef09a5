"""The audit store under load and faults: batches keep each chain's order, two replicas
storing concurrently fork no chain, and killing the audit service mid-stream ends with
every event stored exactly once and every chain verifying."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import pytest
from sqlalchemy import func, select

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import subject_for
from deelrx_kit.audit_partitions import PARTITIONS, partition_of
from deelrx_kit.clock import SystemClock
from deelrx_kit.db import create_engine, migrate, session_factory
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deploy.local import infra
from services.audit.adapters import partition_sql, sql
from services.audit.adapters.protobuf_records import event_record
from services.audit.app import AuditLog
from services.audit.domain.events import team_chain
from services.audit.main import audit_log, bootstrap

from .conftest import event, settings_for

MIGRATIONS = Path(__file__).parents[3] / "services" / "audit" / "migrations"


async def _log(database_url: str) -> tuple[AuditLog, Callable[[], Awaitable[None]]]:
    await migrate(MIGRATIONS, database_url, "audit")
    engine = create_engine(database_url, "audit")
    return audit_log(session_factory(engine), SystemClock()), engine.dispose


async def test_a_batch_keeps_each_chains_order_and_skips_what_is_stored(database_url: str) -> None:
    audit, close = await _log(database_url)
    teams = [new_id("tm") for _ in range(3)]
    evs = [event("team.updated", team_id=teams[i % 3]) for i in range(30)]
    records = [event_record(e, e.time.ToDatetime()) for e in evs]
    stored = await audit.record_events(records[:20])
    again = await audit.record_events(records[10:] + records[:5])  # redeliveries mixed in
    assert len(stored) == 20 and len(again) == 10
    for team in teams:
        check = await audit.verify_chain(team_id=team)
        assert check.ok and check.events_checked == 10
        async with audit.sessionmaker() as s:
            rows = await sql.chain_events(s, f"team:{team}", after_seq=0, up_to_seq=100, limit=100)
        assert [r.event.id for r in rows] == [e.id for e in evs if e.team_id == team]  # arrival order
    await close()


async def test_two_replicas_appending_the_same_chains_fork_nothing(database_url: str) -> None:
    a, close_a = await _log(database_url)
    b, close_b = await _log(database_url)
    team = new_id("tm")
    records = [event_record(e, e.time.ToDatetime()) for e in (event("team.updated", team_id=team) for _ in range(200))]
    batches = [records[i : i + 20] for i in range(0, 200, 20)]
    await asyncio.gather(*(r.record_events(batch) for r, batch in zip([a, b] * 5, batches, strict=True)))
    await asyncio.gather(*(r.record_events(batch) for r, batch in zip([b, a] * 5, batches, strict=True)))
    check = await a.verify_chain(team_id=team)
    assert check.ok and check.events_checked == 200
    await close_a()
    await close_b()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_killing_the_audit_service_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str
) -> None:
    server = infra.start_nats(tmp_path / "nats")  # its own: 2,000 events stay out of the shared stream
    nats_url = server.url
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await nats_bus.ensure_streams(js)
    teams = [new_id("tm") for _ in range(4)]
    evs = [event("customer.updated", team_id=teams[i % 4]) for i in range(2000)]
    settings = settings_for(tmp_path, database_url, nats_url).model_copy(update={"audit_partition_lease_seconds": 2.0})
    first = bootstrap(settings, grpc_port=0)
    await first.start()

    async def publish(batch: list) -> None:  # type: ignore[type-arg]
        acks = [
            await js.publish_async(subject_for(e), e.SerializeToString(), headers={"Nats-Msg-Id": e.id}) for e in batch
        ]
        await asyncio.gather(*acks)

    async def stored() -> int:
        engine = create_engine(database_url, "audit")
        async with engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sql.events).where(sql.events.c.team_id.in_(teams)))
        await engine.dispose()
        return int(n or 0)

    await publish(evs[:1000])
    for _ in range(200):
        if await stored() > 0:
            break
        await asyncio.sleep(0.02)
    for task in first._running:  # a crash: no orderly stop of the consumers
        task.cancel()
    await first.stop()
    await publish(evs[1000:])  # more arrives while no audit service runs
    assert await stored() < 2000  # it really stopped midway
    second = bootstrap(settings, grpc_port=0)
    await second.start()
    try:
        for _ in range(600):
            if await stored() >= 2000:
                break
            await asyncio.sleep(0.05)
        assert await stored() == 2000
        ch = channel(f"127.0.0.1:{second.grpc.port}")
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        for team in teams:
            check = await stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=team))
            assert check.ok and check.events_checked == 500
        await ch.close()
    finally:
        await second.stop()
        await nc.close()
        server.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_live_stream_sees_what_every_replica_stores(
    tmp_path: Path, database_url: str, nats_url: str, nats_client
) -> None:
    js = nats_client.jetstream()
    await nats_bus.ensure_streams(js)
    settings = settings_for(tmp_path, database_url, nats_url).model_copy(update={"audit_partition_lease_seconds": 3.0})
    replicas = [bootstrap(settings, grpc_port=0) for _ in range(2)]
    for rt in replicas:
        await rt.start()
    ch = channel(f"127.0.0.1:{replicas[1].grpc.port}")
    engine = create_engine(database_url, "audit")
    try:
        # Wait until the replicas share the partitions: then one team of each holder's
        # partitions is stored by a different replica, and both stream from the second one.
        owners: dict[int, str] = {}
        for _ in range(600):
            async with engine.connect() as conn:
                rows = (await conn.execute(select(partition_sql.partition_leases))).all()
            owners = {r.partition: r.owner for r in rows}
            if len(owners) == PARTITIONS and len(set(owners.values())) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(set(owners.values())) == 2
        teams: dict[str, str] = {}
        while len(teams) < 2:
            team = new_id("tm")
            teams.setdefault(owners[partition_of(team_chain(team))], team)
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        calls = {t: stub.StreamEvents(audit_pb2.StreamEventsRequest(team_id=t)) for t in teams.values()}
        for call in calls.values():
            await call.initial_metadata()
        await asyncio.sleep(0.3)
        evs = {t: [event("customer.updated", team_id=t) for _ in range(20)] for t in teams.values()}
        for team_events in evs.values():
            for e in team_events:
                await js.publish(subject_for(e), e.SerializeToString(), headers={"Nats-Msg-Id": e.id})

        async def read(team: str) -> set[str]:
            got: set[str] = set()
            async for item in calls[team]:
                got.add(item.event.id)
                if got >= {e.id for e in evs[team]}:
                    break
            return got

        for team in teams.values():
            got = await asyncio.wait_for(read(team), timeout=30)
            calls[team].cancel()
            assert got == {e.id for e in evs[team]}
    finally:
        await engine.dispose()
        await ch.close()
        for rt in replicas:
            await rt.stop()
