"""Signed checkpoints: truncating or rewriting the tail of a chain (hashes and head
recomputed, as an attacker with database access would) is detected and located; a head is
signed only over a verified tail; a forged signature is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, update

from deelrx_kit.clock import SystemClock
from deelrx_kit.db import create_engine, migrate, session_factory, transaction
from deelrx_kit.ids import new_id
from services.audit.adapters import checkpoint_sql, sql
from services.audit.adapters.protobuf_records import event_record
from services.audit.app import AuditLog
from services.audit.checkpoints import ChainCheckpoints, CheckpointKey
from services.audit.domain.events import chain
from services.audit.main import audit_log, chain_checkpoints

from .conftest import event

MIGRATIONS = Path(__file__).parents[3] / "services" / "audit" / "migrations"


async def _setup(database_url: str, events: int = 30) -> tuple[AuditLog, ChainCheckpoints, str, list[str]]:
    await migrate(MIGRATIONS, database_url, "audit")
    sessions = session_factory(create_engine(database_url, "audit"))
    audit = audit_log(sessions, SystemClock())
    key = CheckpointKey(b"test-secret")
    audit.checkpoint_key = key
    team = new_id("tm")
    evs = [event("team.updated", team_id=team) for _ in range(events)]
    await audit.record_events([event_record(e, datetime.now(UTC)) for e in evs])
    return audit, chain_checkpoints(sessions, key, SystemClock()), f"team:{team}", [e.id for e in evs]


async def test_truncating_the_tail_is_detected(database_url: str) -> None:
    audit, checkpoints, key, ids = await _setup(database_url)
    team = key.removeprefix("team:")
    cp = await checkpoints.sign_head(key)
    assert cp is not None and cp.seq == 30 and checkpoints.key.valid(cp)
    check = await audit.verify_chain(team_id=team)
    assert check.ok and check.checkpoints_checked == 1
    async with transaction(audit.sessionmaker) as s:  # cut the last five and move the head back
        rows = await sql.chain_events(s, key, after_seq=0, up_to_seq=30, limit=100)
        await s.execute(delete(sql.events).where(sql.events.c.chain_key == key, sql.events.c.seq > 25))
        await s.execute(
            update(sql.chain_heads).where(sql.chain_heads.c.chain_key == key).values(seq=25, head_hash=rows[24].hash)
        )
    broken = await audit.verify_chain(team_id=team)
    assert not broken.ok and "truncated" in broken.problem
    assert broken.first_bad_event_id == ids[24]  # the last event left before the cut


async def test_rewriting_the_tail_with_recomputed_hashes_is_detected(database_url: str) -> None:
    audit, checkpoints, key, ids = await _setup(database_url)
    team = key.removeprefix("team:")
    assert await checkpoints.sign_head(key) is not None
    async with transaction(audit.sessionmaker) as s:
        rows = await sql.chain_events(s, key, after_seq=0, up_to_seq=30, limit=100)
        prev = rows[26]
        rewritten = []
        for r in rows[27:]:
            e = replace(r.event, details={"rewritten": True}) if r.seq == 28 else r.event
            c = chain(e, prev_seq=prev.seq, prev_hash=prev.hash, stored_at=r.stored_at)
            rewritten.append(c)
            prev = c
        await s.execute(delete(sql.events).where(sql.events.c.chain_key == key, sql.events.c.seq > 27))
        await s.execute(delete(sql.event_ids).where(sql.event_ids.c.chain_key == key, sql.event_ids.c.seq > 27))
        await sql.insert_events(s, rewritten)
        await s.execute(
            update(sql.chain_heads).where(sql.chain_heads.c.chain_key == key).values(seq=30, head_hash=prev.hash)
        )
    audit.checkpoint_key = None  # the links alone are consistent again...
    assert (await audit.verify_chain(team_id=team)).ok
    audit.checkpoint_key = checkpoints.key  # ...the signed checkpoint is not
    broken = await audit.verify_chain(team_id=team)
    assert not broken.ok and "differs from the signed checkpoint" in broken.problem
    assert broken.first_bad_event_id == ids[29]


async def test_new_events_are_signed_only_over_a_verified_tail(database_url: str) -> None:
    audit, checkpoints, key, ids = await _setup(database_url)
    team = key.removeprefix("team:")
    assert (await checkpoints.sign_head(key)).seq == 30  # type: ignore[union-attr]
    assert await checkpoints.sign_head(key) is None  # nothing new
    more = [event("team.updated", team_id=team) for _ in range(5)]
    await audit.record_events([event_record(e, datetime.now(UTC)) for e in more])
    assert await checkpoints.sign_moved_chains() == 1
    async with transaction(audit.sessionmaker) as s:
        assert [c.seq for c in await checkpoint_sql.for_chain(s, key)] == [30, 35]
        await s.execute(update(sql.events).where(sql.events.c.id == ids[3]).values(details='{"x":1}'))
    assert (await audit.verify_chain(team_id=team)).first_bad_event_id == ids[3]
    later = [event("team.updated", team_id=team)]
    await audit.record_events([event_record(e, datetime.now(UTC)) for e in later])
    async with transaction(audit.sessionmaker) as s:  # tamper after the last checkpoint
        await s.execute(update(sql.events).where(sql.events.c.id == later[0].id).values(details='{"x":2}'))
    assert await checkpoints.sign_head(key) is None  # never signs over a bad tail


async def test_a_forged_checkpoint_is_refused(database_url: str) -> None:
    audit, checkpoints, key, _ = await _setup(database_url)
    cp = await checkpoints.sign_head(key)
    assert cp is not None
    other = CheckpointKey(b"another-secret")
    assert not other.valid(cp) and not checkpoints.key.valid(replace(cp, seq=29))
    async with transaction(audit.sessionmaker) as s:
        await s.execute(
            update(checkpoint_sql.checkpoints)
            .where(checkpoint_sql.checkpoints.c.chain_key == key)
            .values(signature=cp.signature[:-4] + "AAAA")
        )
    broken = await audit.verify_chain(team_id=key.removeprefix("team:"))
    assert not broken.ok and "invalid signature" in broken.problem


async def test_archiving_keeps_the_chain_verifiable_across_the_cut(database_url: str, tmp_path: Path) -> None:
    import gzip
    import json
    from datetime import timedelta

    from services.audit.main import chain_archiver

    audit, checkpoints, key, ids = await _setup(database_url)
    team = key.removeprefix("team:")
    archiver = chain_archiver(audit.sessionmaker, checkpoints.key, SystemClock(), tmp_path / "archive")
    cut_time = datetime.now(UTC) + timedelta(seconds=1)
    later = [event("team.updated", team_id=team) for _ in range(5)]
    path = await archiver.archive_chain(key, before=cut_time)  # all 30 stored before the cut
    assert path is not None and Path(path).exists()
    lines = [json.loads(line) for line in gzip.open(path, "rt")]
    assert [x["id"] for x in lines[:-1]] == ids and lines[-1]["checkpoint"]["seq"] == 30
    async with audit.sessionmaker() as s:
        assert await sql.chain_events(s, key, after_seq=0, up_to_seq=100, limit=100) == []
    await audit.record_events([event_record(e, datetime.now(UTC)) for e in later])
    check = await audit.verify_chain(team_id=team)
    assert check.ok and check.events_checked == 5 and check.checkpoints_checked == 1
    assert await archiver.archive_chain(key, before=datetime.now(UTC) - timedelta(days=1)) is None  # nothing older
    # A base moved without a signed checkpoint (someone deleting more) is found.
    async with transaction(audit.sessionmaker) as s:
        await s.execute(update(checkpoint_sql.chain_bases).values(seq=32))
        await s.execute(delete(sql.events).where(sql.events.c.chain_key == key, sql.events.c.seq <= 32))
    broken = await audit.verify_chain(team_id=team)
    assert not broken.ok
