"""Retention trims the id rows of the events it archived, in the transaction that deletes
them; the chain still verifies across the cut, and a late redelivery of an archived event
(its id row gone) is refused rather than chained a second time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from deelrx.audit.v1 import audit_pb2
from deelrx_kit.clock import SystemClock
from deelrx_kit.db import create_engine, session_factory
from deelrx_kit.ids import new_id
from services.audit.adapters import sql
from services.audit.adapters.protobuf_records import event_record
from services.audit.checkpoints import CheckpointKey
from services.audit.main import chain_archiver
from tests.integration.harness import make_settings

from .conftest import AuditHarness, event, publish
from .test_checkpoints import _setup


async def _id_rows(sessionmaker, chain_key: str) -> int:  # type: ignore[no-untyped-def]
    async with sessionmaker() as s:
        n = await s.scalar(
            select(func.count()).select_from(sql.event_ids).where(sql.event_ids.c.chain_key == chain_key)
        )
    return int(n or 0)


async def _chain(sessionmaker, chain_key: str) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    async with sessionmaker() as s:
        rows = await sql.chain_events(s, chain_key, after_seq=0, up_to_seq=10_000, limit=10_000)
    return [(r.seq, r.event.id) for r in rows]


async def test_archived_ids_are_trimmed_and_a_late_redelivery_is_refused(database_url: str, tmp_path: Path) -> None:
    audit, checkpoints, key, _ = await _setup(database_url, events=20)
    team = key.removeprefix("team:")
    async with audit.sessionmaker() as s:
        archived = [c.event for c in await sql.chain_events(s, key, after_seq=0, up_to_seq=20, limit=100)]
    archiver = chain_archiver(audit.sessionmaker, checkpoints.key, SystemClock(), tmp_path / "archive")
    assert await archiver.archive_chain(key, before=datetime.now(UTC) + timedelta(seconds=1)) is not None
    assert await _id_rows(audit.sessionmaker, key) == 0
    later = [event("team.updated", team_id=team) for _ in range(3)]
    assert len(await audit.record_events([event_record(e, datetime.now(UTC)) for e in later])) == 3
    assert await _id_rows(audit.sessionmaker, key) == 3

    # The stream delivers two archived events again, in a batch with a new one.
    fresh = event_record(event("team.updated", team_id=team), datetime.now(UTC))
    stored = await audit.record_events([archived[0], archived[-1], fresh])
    assert [c.event.id for c in stored] == [fresh.id]
    assert await _chain(audit.sessionmaker, key) == [(21 + i, e.id) for i, e in enumerate([*later, fresh])]
    check = await audit.verify_chain(team_id=team)
    assert (check.ok, check.events_checked) == (True, 4)

    # A second cut: the events of the first one stay refused, new ones go on the chain.
    assert await archiver.archive_chain(key, before=datetime.now(UTC) + timedelta(seconds=1)) is not None
    assert await _id_rows(audit.sessionmaker, key) == 0
    newest = event_record(event("team.updated", team_id=team), datetime.now(UTC))
    stored = await audit.record_events([archived[3], newest])
    assert [c.event.id for c in stored] == [newest.id]
    assert await _chain(audit.sessionmaker, key) == [(25, newest.id)]
    assert (await audit.verify_chain(team_id=team)).ok
    # The refusal is per chain: an old event of a chain never archived is stored.
    old = event("team.updated", team_id=new_id("tm"), when=datetime.now(UTC) - timedelta(days=400))
    assert len(await audit.record_events([event_record(old, datetime.now(UTC))])) == 1


async def test_a_late_redelivery_through_the_stream_leaves_the_chain_whole(audit: AuditHarness, tmp_path: Path) -> None:
    team = new_id("tm")
    evs = [event("team.updated", team_id=team) for _ in range(5)]
    for ev in evs:
        await publish(audit.js, ev)
    await audit.wait_team_events(team, 5)
    engine = create_engine(audit.database_url, "audit")
    sessions = session_factory(engine)
    try:
        key = CheckpointKey(make_settings(tmp_path).secret())  # the service's checkpoint key
        archiver = chain_archiver(sessions, key, SystemClock(), tmp_path / "archive")
        assert await archiver.archive_chain(f"team:{team}", before=datetime.now(UTC) + timedelta(seconds=1))
        assert await _id_rows(sessions, f"team:{team}") == 0
        # A consumer reset (or a new durable) delivers an archived event again, then a new one
        # of the same chain (same partition, so in this order).
        await publish(audit.js, evs[2], msg_id=new_id("req"))
        marker = event("team.updated", team_id=team)
        await publish(audit.js, marker)
        assert [e.id for e in await audit.wait_team_events(team, 1)] == [marker.id]
        assert await _chain(sessions, f"team:{team}") == [(6, marker.id)]
        check = await audit.stub.VerifyChain(audit_pb2.VerifyChainRequest(team_id=team))
        assert (check.ok, check.events_checked) == (True, 1)
    finally:
        await engine.dispose()
