"""Archiver over in-memory stores and a fake archive sink: events stored before the cut are
archived with a checkpoint signed at the cut and only then deleted; the chain stays verifiable
across the cut; a failed upload or a tampered prefix deletes nothing."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from services.audit.domain.events import EventRecord, team_chain
from tests.unit.audit.fakes import T0, AuditWorld, FakeArchiveSink

_ids = itertools.count(1)
T1 = team_chain("t1")
DAY = timedelta(days=1)


def events(n: int, team: str = "t1", when: datetime = T0) -> list[EventRecord]:
    return [EventRecord(f"evt_{next(_ids):04d}", when, "member.joined", team_id=team) for _ in range(n)]


async def aged_world(old: int = 5, new: int = 2) -> tuple[AuditWorld, list[EventRecord], list[EventRecord]]:
    """`old` events stored at T0, `new` ones two days later."""
    w = AuditWorld()
    w.log.checkpoint_key = w.key
    before = events(old)
    await w.log.record_events(before)
    w.clock.advance(days=2)
    after = events(new, when=w.clock.now())
    await w.log.record_events(after)
    return w, before, after


async def test_the_old_prefix_is_archived_signed_and_then_deleted(tmp_path: Path) -> None:
    w, old, new = await aged_world()
    sink = FakeArchiveSink(tmp_path)

    location = await w.archiver(sink).archive_chain(T1, before=T0 + DAY)

    name = "team_t1-0000000001-0000000005.ndjson.gz"
    assert location == f"mem://archive/{name}"
    lines = sink.lines(name)
    assert [x["id"] for x in lines[:-1]] == [e.id for e in old]
    assert lines[-1]["checkpoint"]["seq"] == 5 and lines[-1]["checkpoint"]["head_hash"] == lines[-2]["hash"]
    assert [c.event.id for c in w.events.chain(T1)] == [e.id for e in new]
    assert w.checkpoints.bases[T1] == (5, lines[-2]["hash"])
    assert list(tmp_path.iterdir()) == []  # nothing left in the spool


async def test_the_chain_stays_verifiable_across_the_cut(tmp_path: Path) -> None:
    w, old, _ = await aged_world()
    await w.archiver(FakeArchiveSink(tmp_path)).archive_chain(T1, before=T0 + DAY)
    await w.log.record_events(events(2, when=w.clock.now()))

    check = await w.log.verify_chain(team_id="t1")

    assert check.ok and check.events_checked == 4 and check.checkpoints_checked == 1
    assert await w.log.record_event(old[0]) is None  # an archived event delivered again is not stored again


async def test_an_archived_prefix_without_its_checkpoint_fails_verification(tmp_path: Path) -> None:
    w, _, _ = await aged_world()
    await w.archiver(FakeArchiveSink(tmp_path)).archive_chain(T1, before=T0 + DAY)
    w.checkpoints.signed[T1] = []  # someone removed the checkpoint that covers the cut

    check = await w.log.verify_chain(team_id="t1")

    assert not check.ok and "archived prefix" in check.problem


async def test_nothing_is_deleted_when_the_archive_cannot_be_stored(tmp_path: Path) -> None:
    w, old, new = await aged_world()
    sink = FakeArchiveSink(tmp_path)
    sink.fail = True

    assert await w.archiver(sink).archive_chain(T1, before=T0 + DAY) is None

    assert [c.event.id for c in w.events.chain(T1)] == [e.id for e in old + new]
    assert w.checkpoints.bases == {} and list(tmp_path.iterdir()) == []
    assert (await w.log.verify_chain(team_id="t1")).ok


async def test_a_tampered_prefix_is_not_archived(tmp_path: Path) -> None:
    w, _, _ = await aged_world()
    row = w.events.rows[(T1, 2)]
    w.events.rows[(T1, 2)] = replace(row, event=replace(row.event, actor_user_id="u_forged"))
    sink = FakeArchiveSink(tmp_path)

    assert await w.archiver(sink).archive_chain(T1, before=T0 + DAY) is None

    assert len(w.events.chain(T1)) == 7 and sink.stored == {} and list(tmp_path.iterdir()) == []


async def test_a_later_cut_continues_from_the_last_one(tmp_path: Path) -> None:
    w, _, _ = await aged_world()
    sink = FakeArchiveSink(tmp_path)
    archiver = w.archiver(sink)
    await archiver.archive_chain(T1, before=T0 + DAY)
    w.clock.advance(days=2)
    await w.log.record_events(events(1, when=w.clock.now()))

    location = await archiver.archive_chain(T1, before=T0 + 3 * DAY)

    assert location == "mem://archive/team_t1-0000000006-0000000007.ndjson.gz"
    assert [c.seq for c in w.events.chain(T1)] == [8]
    assert (await w.log.verify_chain(team_id="t1")).ok
    assert await archiver.archive_chain(T1, before=T0 + 3 * DAY) is None  # nothing older left


async def test_only_chains_with_events_past_the_retention_age_are_archived(tmp_path: Path) -> None:
    w, _, _ = await aged_world()
    await w.log.record_events(events(3, team="t2"))  # stored just now
    w.clock.advance(days=1)  # t1's first events are 3 days old, the rest 1 day

    archived = await w.archiver(FakeArchiveSink(tmp_path)).archive_older_than(timedelta(days=2))

    assert archived == 1
    assert w.checkpoints.bases.keys() == {T1} and len(w.events.chain(team_chain("t2"))) == 3


async def test_an_event_as_old_as_the_archived_part_of_its_chain_is_refused(tmp_path: Path) -> None:
    # Its id row went with the archive, so a late redelivery is recognised by its time instead.
    w, old, _ = await aged_world()
    await w.archiver(FakeArchiveSink(tmp_path)).archive_chain(T1, before=T0 + DAY)
    late = events(1, when=T0)

    assert await w.log.record_events([old[2], *late]) == []
    assert w.events.ids.isdisjoint({old[2].id, late[0].id})
    assert (await w.log.verify_chain(team_id="t1")).ok
