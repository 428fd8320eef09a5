"""Events published to JetStream are stored once, in verifiable hash chains."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from deelrx.audit.v1 import audit_pb2
from deelrx_kit.clock import SystemClock
from deelrx_kit.db import create_engine, migrate, session_factory
from deelrx_kit.ids import new_id
from services.audit.adapters import sql
from services.audit.adapters.protobuf_records import event_record
from services.audit.main import audit_log

from .conftest import AuditHarness, error_code, event, publish

MIGRATIONS = Path(__file__).parents[3] / "services" / "audit" / "migrations"


async def test_published_events_are_stored_once(audit: AuditHarness) -> None:
    team = new_id("tm")
    evs = [event("member.invited", team_id=team, user_id=new_id("usr")) for _ in range(3)]
    for ev in evs:
        await publish(audit.js, ev)
    # A relay retry (JetStream drops it) and a redelivery that slipped past the dedup
    # window (another message id): neither may add a row.
    await publish(audit.js, evs[0])
    await publish(audit.js, evs[1], msg_id=new_id("req"))
    marker = event("team.updated", team_id=team)
    await publish(audit.js, marker)

    stored = await audit.wait_team_events(team, 4)
    await asyncio.sleep(0.3)  # give a wrongly duplicated row the chance to show up
    stored = await audit.team_events(team)
    assert sorted(e.id for e in stored) == sorted([*(e.id for e in evs), marker.id])
    got = next(e for e in stored if e.id == evs[0].id)
    assert got.type == "member.invited" and got.actor.user_id == evs[0].actor.user_id and got.source == "test"

    engine = create_engine(audit.database_url, "audit")
    async with engine.connect() as conn:
        rows = await conn.execute(select(func.count()).select_from(sql.events).where(sql.events.c.team_id == team))
        assert rows.scalar_one() == 4
    await engine.dispose()


async def test_chain_verifies_and_tampering_is_found(audit: AuditHarness) -> None:
    team, user = new_id("tm"), new_id("usr")
    evs = [event("member.role_changed", team_id=team, details={"role": f"r{i}"}) for i in range(5)]
    own = [event("auth.login_succeeded", user_id=user) for _ in range(2)]
    for ev in [*evs, *own]:
        await publish(audit.js, ev)
    await audit.wait_team_events(team, 5)

    ok = await audit.stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=team))
    assert (ok.ok, ok.events_checked, ok.first_bad_event_id) == (True, 5, "")
    assert len(ok.head_hash) == 64
    mine = await audit.stub.VerifyChain(audit_pb2.VerifyChainRequest(user_id=user))
    assert (mine.ok, mine.events_checked) == (True, 2)
    empty = await audit.stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=new_id("tm")))
    assert (empty.ok, empty.events_checked) == (True, 0)
    assert await error_code(audit.stub.VerifyChain(audit_pb2.VerifyChainRequest())) == "validation_error"

    # Someone with database access rewrites history.
    engine = create_engine(audit.database_url, "audit")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit_events SET details = :d WHERE id = :id"), {"d": '{"role":"owner"}', "id": evs[2].id}
        )
    await engine.dispose()

    bad = await audit.stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=team))
    assert bad.ok is False
    assert bad.first_bad_event_id == evs[2].id
    assert bad.events_checked == 5


async def test_deleted_row_breaks_the_chain(audit: AuditHarness) -> None:
    team = new_id("tm")
    evs = [event("member.joined", team_id=team) for _ in range(4)]
    for ev in evs:
        await publish(audit.js, ev)
    await audit.wait_team_events(team, 4)
    engine = create_engine(audit.database_url, "audit")
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": evs[1].id})
    await engine.dispose()
    bad = await audit.stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=team))
    assert bad.ok is False and bad.first_bad_event_id == evs[2].id


async def test_concurrent_appenders_keep_one_linear_chain(database_url: str) -> None:
    """Two replicas (separate engines) appending to the same chain at once never fork it."""
    await migrate(MIGRATIONS, database_url, "audit")
    engines = [create_engine(database_url, "audit") for _ in range(2)]
    logs = [audit_log(session_factory(e), SystemClock()) for e in engines]
    team = new_id("tm")
    now = datetime.now(UTC)
    records = [
        event_record(event("member.joined", team_id=team, when=now + timedelta(seconds=i)), now) for i in range(30)
    ]
    twice = records[0]  # the same event delivered to both replicas
    results = await asyncio.gather(
        *(logs[i % 2].record_event(r) for i, r in enumerate(records)),
        logs[1].record_event(twice),
    )
    assert sum(r is not None for r in results) == 30

    async with logs[0].sessionmaker() as s:
        rows = await sql.chain_events(s, f"team:{team}", after_seq=0, up_to_seq=10_000, limit=10_000)
    assert [r.seq for r in rows] == list(range(1, 31))
    assert len({r.event.id for r in rows}) == 30
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    check = await logs[0].verify_chain(team_id=team)
    assert (check.ok, check.events_checked, check.head_hash) == (True, 30, rows[-1].hash)
    for e in engines:
        await e.dispose()
