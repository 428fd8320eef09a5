"""Faults in the audit pipeline: with thousands of events in flight from an outbox relay,
stopping NATS and starting it again ends with every event stored exactly once and every
chain verifying; killing (SIGKILL) the audit service and the detector mid-stream and starting
them again ends with every event stored once, chains and signed checkpoints verifying, and
the detector raising each alert once. The 10,000-event runs are marked `slow`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx_kit import db, nats_bus
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.clock import SystemClock
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deelrx_kit.outbox import JetStreamProvider, Outbox, outbox_table
from deploy.local import infra
from services.audit.adapters import sql
from services.audit.main import audit_log, bootstrap
from tests.integration.audit.conftest import event
from tests.integration.harness import eventually, make_settings

EVENTS = 3000
MANY = 10_000


async def _stored(url: str, teams: list[str]) -> int:
    engine = db.create_engine(url, "audit")
    try:
        async with engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sql.events).where(sql.events.c.team_id.in_(teams)))
    finally:
        await engine.dispose()
    return int(n or 0)


@pytest.mark.parametrize("events", [EVENTS, pytest.param(MANY, marks=pytest.mark.slow)])
async def test_restarting_nats_mid_stream_loses_and_doubles_nothing(tmp_path: Path, events: int) -> None:
    EVENTS = events
    port = infra.free_port()
    server = infra.start_nats(tmp_path / "nats", port=port)
    audit_url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    settings = make_settings(tmp_path, audit_url, server.url)
    audit = bootstrap(settings, grpc_port=0)
    await audit.start()
    # The producer: a service's outbox with every event staged, and its relay.
    metadata = db.new_metadata()
    table = outbox_table(metadata)
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'producer.db'}", "producer")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessions = db.session_factory(engine)
    outbox = Outbox(table)
    teams = [new_id("tm") for _ in range(5)]
    async with db.transaction(sessions) as s:
        for i in range(EVENTS):
            e = event("customer.updated", team_id=teams[i % 5])
            await outbox.add(s, subject_for(e), e, e.id)
    nc = await nats_bus.connect(server.url, "producer")
    provider = JetStreamProvider()
    provider.js = nc.jetstream()
    await nats_bus.ensure_streams(provider.js)
    stop = asyncio.Event()
    relay = asyncio.create_task(outbox.relay(sessions, provider, stop, poll_seconds=0.1, batch=100))
    try:
        for _ in range(600):
            if await _stored(audit_url, teams) >= EVENTS // 10:
                break
            await asyncio.sleep(0.05)
        server.stop()  # NATS goes away with events in flight...
        in_between = await _stored(audit_url, teams)
        await asyncio.sleep(1.5)
        server = infra.start_nats(tmp_path / "nats", port=port)  # ...and comes back with its data
        for _ in range(3000):
            if await _stored(audit_url, teams) >= EVENTS and await outbox.pending(sessions) == 0:
                break
            await asyncio.sleep(0.1)
        # Sentinel: one more event through the same outbox, relay and consumer, all in order;
        # once it is stored, a duplicate of anything before it would be stored too.
        sentinel_team = new_id("tm")
        async with db.transaction(sessions) as s:
            e = event("customer.updated", team_id=sentinel_team)
            await outbox.add(s, subject_for(e), e, e.id)
        outbox.notify()
        await eventually(lambda: _stored(audit_url, [sentinel_team]), lambda n: n == 1, timeout=60)
        assert in_between < EVENTS
        assert await _stored(audit_url, teams) == EVENTS
        assert await outbox.pending(sessions) == 0
        reader = db.create_engine(audit_url, "audit")
        log = audit_log(db.session_factory(reader), SystemClock())
        for team in teams:
            check = await log.verify_chain(team_id=team)
            assert check.ok and check.events_checked == EVENTS // 5
        await reader.dispose()
    finally:
        stop.set()
        await relay
        await nc.close()
        await engine.dispose()
        await audit.stop()
        server.stop()


class _Processes:
    """The audit service and the detector as their own processes, so they can be SIGKILLed."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.audit_port = 0

    def start(self, name: str) -> None:
        port = infra.free_port()
        env = {**os.environ, **self.env, f"DEELRX_{name.upper()}_ADDR": f"127.0.0.1:{port}"}
        out = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        infra.wait_for_port(port, proc=self.procs[name])
        if name == "audit":
            self.audit_port = port

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _count(url: str, query) -> int:  # type: ignore[no-untyped-def]
    engine = db.create_engine(url, "audit")
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(query) or 0)
    except Exception:
        return 0
    finally:
        await engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_killing_audit_and_detector_with_ten_thousand_in_flight_loses_and_doubles_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    nats_server = infra.start_nats(tmp_path / "nats")
    redis_server = infra.start_redis(tmp_path / "redis")
    running = _Processes(
        {
            "DEELRX_DATA_DIR": str(tmp_path),
            "DEELRX_NATS_URL": nats_server.url,
            "DEELRX_REDIS_URL": redis_server.url,
            "DEELRX_AUDIT_DATABASE_URL": postgres_url,
            "DEELRX_SECRET_KEY": "test-secret-0123456789abcdef-0123456789",
            "DEELRX_METRICS_ENABLED": "false",
            "DEELRX_LOG_LEVEL": "WARNING",
            # Short leases and checkpoints, so a restart takes over quickly and signs often.
            "DEELRX_AUDIT_PARTITION_LEASE_SECONDS": "3",
            "DEELRX_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "1",
        },
        tmp_path,
    )
    nc = await nats_bus.connect(nats_server.url, "producer")
    js = nc.jetstream()
    await nats_bus.ensure_streams(js)
    teams = [new_id("tm") for _ in range(40)]
    victims = [new_id("usr") for _ in range(20)]  # ten failed logins each: one brute_force alert each
    t0 = datetime.now(UTC)
    attacks = [
        new_event(
            "auth.login_failed",
            source="test",
            now=t0 + timedelta(milliseconds=i),
            actor_user_id=user,
            outcome="failure",
            target=("user", user),
        )
        for user in victims
        for i in range(10)
    ]
    work = [
        new_event("customer.updated", source="test", now=t0, team_id=teams[i % 40], details={"n": i})
        for i in range(MANY - len(attacks))
    ]
    # The attacks spread over the whole stream, so both kills land in the middle of some.
    evs = list(work)
    for n, attack in enumerate(attacks):
        evs.insert(n * (len(evs) // len(attacks)), attack)
    ids = [e.id for e in evs]
    assert len(set(ids)) == MANY

    async def publish(batch: list) -> None:  # type: ignore[type-arg]
        for start in range(0, len(batch), 1000):
            acks = [
                await js.publish_async(subject_for(e), e.SerializeToString(), headers={"Nats-Msg-Id": e.id})
                for e in batch[start : start + 1000]
            ]
            await asyncio.gather(*acks)

    stored_query = select(func.count()).select_from(sql.event_ids).where(sql.event_ids.c.id.in_(ids))
    alerts_query = (
        select(func.count())
        .select_from(sql.alerts)
        .where(sql.alerts.c.rule == "brute_force")
        .where(sql.alerts.c.id.in_(select(sql.alert_users.c.alert_id).where(sql.alert_users.c.user_id.in_(victims))))
    )

    async def until(query, done, timeout: float = 300.0) -> int:  # type: ignore[no-untyped-def]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            n = await _count(postgres_url, query)
            if done(n) or asyncio.get_running_loop().time() > deadline:
                return n
            await asyncio.sleep(0.1)

    try:
        running.start("audit")
        running.start("detector")
        await publish(evs[: MANY // 2])
        await until(stored_query, lambda n: n > 0)
        running.kill("audit")  # mid-stream: events fetched, maybe stored, not acked
        running.kill("detector")
        at_kill = await _count(postgres_url, stored_query)
        assert at_kill < MANY  # it really stopped midway
        await publish(evs[MANY // 2 :])  # the rest arrives while both are down
        running.start("audit")
        running.start("detector")
        assert await until(stored_query, lambda n: n >= MANY) == MANY
        # Every alert once, though the detector saw some attacks twice (redelivered after the kill).
        assert await until(alerts_query, lambda n: n >= len(victims), timeout=120) == len(victims)
        rows = await _count(postgres_url, select(func.count()).select_from(sql.events).where(sql.events.c.id.in_(ids)))
        assert rows == MANY  # the wide rows too: nothing doubled
        await asyncio.sleep(2.5)  # checkpoints (every second) cover the final heads
        ch = channel(f"127.0.0.1:{running.audit_port}")
        try:
            stub = audit_pb2_grpc.AuditServiceStub(ch)
            for team in teams:
                check = await stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=team))
                assert check.ok and check.events_checked == len(work) // 40
                assert check.checkpoints_checked >= 1
            for user in victims:
                check = await stub.VerifyChain(audit_pb2.VerifyChainRequest(user_id=user))
                assert check.ok and check.events_checked >= 10
        finally:
            await ch.close()
        assert await _count(postgres_url, alerts_query) == len(victims)
    finally:
        running.stop()
        await nc.close()
        redis_server.stop()
        nats_server.stop()
