"""Faults in the audit pipeline: with thousands of events in flight from an outbox relay,
stopping NATS and starting it again ends with every event stored exactly once and every
chain verifying."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from deelrx_kit import db, nats_bus
from deelrx_kit.audit_events import subject_for
from deelrx_kit.clock import SystemClock
from deelrx_kit.ids import new_id
from deelrx_kit.outbox import JetStreamProvider, Outbox, outbox_table
from deelrx_kit.settings import Settings
from deploy.local import infra
from services.audit.adapters import sql
from services.audit.app import AuditLog
from services.audit.live import LiveHub
from services.audit.main import bootstrap
from tests.integration.audit.conftest import event

EVENTS = 3000


async def _stored(url: str, teams: list[str]) -> int:
    engine = db.create_engine(url, "audit")
    try:
        async with engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sql.events).where(sql.events.c.team_id.in_(teams)))
    finally:
        await engine.dispose()
    return int(n or 0)


async def test_restarting_nats_mid_stream_loses_and_doubles_nothing(tmp_path: Path) -> None:
    port = infra.free_port()
    server = infra.start_nats(tmp_path / "nats", port=port)
    audit_url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    settings = Settings(
        data_dir=tmp_path,
        database_url=audit_url,
        nats_url=server.url,
        metrics_enabled=False,
        secret_key="test-secret-0123456789abcdef-0123456789",
    )
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
            if await _stored(audit_url, teams) >= EVENTS // 5:
                break
            await asyncio.sleep(0.05)
        server.stop()  # NATS goes away with events in flight...
        in_between = await _stored(audit_url, teams)
        await asyncio.sleep(1.5)
        server = infra.start_nats(tmp_path / "nats", port=port)  # ...and comes back with its data
        for _ in range(1200):
            if await _stored(audit_url, teams) >= EVENTS and await outbox.pending(sessions) == 0:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a duplicate would show up now
        assert in_between < EVENTS
        assert await _stored(audit_url, teams) == EVENTS
        assert await outbox.pending(sessions) == 0
        reader = db.create_engine(audit_url, "audit")
        log = AuditLog(db.session_factory(reader), SystemClock(), LiveHub())
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
