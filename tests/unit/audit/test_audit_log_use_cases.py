"""AuditLog over in-memory stores: appending batches to hash chains (in order, once per event
id, only while the partition lease is held), alerts stored once, paged queries and the user
scope, and verification naming the first tampered event."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

import pytest

from deelrx_kit.audit_partitions import partition_of
from deelrx_kit.errors import DomainError
from services.audit.app import LeaseLost, PartitionFence
from services.audit.domain.alerts import AlertRecord
from services.audit.domain.events import GENESIS_HASH, EventRecord, team_chain, user_chain
from tests.unit.audit.fakes import T0, AuditWorld
from tests.unit.fake_ports import TX

_ids = itertools.count(1)


def event(type: str = "member.joined", *, team: str = "", actor: str = "", at: float = 0, **kw: object) -> EventRecord:
    return EventRecord(
        id=f"evt_{next(_ids):04d}",
        time=T0 + timedelta(seconds=at),
        type=type,
        team_id=team,
        actor_user_id=actor,
        **kw,  # type: ignore[arg-type]
    )


# -- appending ---------------------------------------------------------------------------------
async def test_a_batch_appends_each_chain_in_the_order_given() -> None:
    w = AuditWorld()
    batch = [event(team="t1"), event(team="t2"), event(team="t1"), event(actor="u1"), event(team="t1")]

    stored = await w.log.record_events(batch)

    assert [c.event.id for c in stored if c.chain_key == team_chain("t1")] == [batch[0].id, batch[2].id, batch[4].id]
    t1 = w.events.chain(team_chain("t1"))
    assert [c.seq for c in t1] == [1, 2, 3]
    assert t1[0].prev_hash == GENESIS_HASH and [c.prev_hash for c in t1[1:]] == [c.hash for c in t1[:-1]]
    assert w.events.heads[team_chain("t1")] == (3, t1[-1].hash)
    assert [c.seq for c in w.events.chain(team_chain("t2"))] == [1]
    assert [c.seq for c in w.events.chain(user_chain("u1"))] == [1]
    assert sorted(e.id for e in w.announced) == sorted(e.id for e in batch)  # each once, once stored
    assert [e for e in w.announced if e.team_id == "t1"] == [batch[0], batch[2], batch[4]]


async def test_redeliveries_are_stored_once() -> None:
    w = AuditWorld()
    first, second, third = event(team="t1"), event(team="t1"), event(team="t1")
    await w.log.record_events([first, second])
    w.announced.clear()

    stored = await w.log.record_events([second, third, third])

    assert [(c.event.id, c.seq) for c in stored] == [(third.id, 3)]
    assert [c.event.id for c in w.events.chain(team_chain("t1"))] == [first.id, second.id, third.id]
    assert w.announced == [third]
    assert await w.log.record_event(first) is None  # a lone redelivery: nothing stored, nothing announced
    assert w.announced == [third]


async def test_a_fenced_batch_is_stored_while_this_replica_holds_the_lease() -> None:
    w = AuditWorld()
    e = event(team="t1")
    p = partition_of(e.chain_key)
    await w.leases.claim(TX, p, "r1", T0, T0 + timedelta(seconds=15))

    stored = await w.log.record_events([e], fence=PartitionFence("r1", frozenset({p})))

    assert [c.event.id for c in stored] == [e.id]


async def test_a_fenced_batch_whose_lease_is_lost_stores_nothing() -> None:
    w = AuditWorld()
    a, b = event(team="t1"), event(team="t7")
    pa, pb = partition_of(a.chain_key), partition_of(b.chain_key)
    assert pa != pb
    await w.leases.claim(TX, pa, "r1", T0, T0 + timedelta(seconds=15))
    await w.leases.claim(TX, pb, "r2", T0, T0 + timedelta(seconds=15))

    with pytest.raises(LeaseLost) as lost:
        await w.log.record_events([a, b], fence=PartitionFence("r1", frozenset({pa, pb})))

    assert lost.value.partitions == frozenset({pb})
    assert w.events.rows == {} and w.events.heads == {} and w.announced == []


async def test_a_lapsed_lease_fences_the_replica_that_stalled() -> None:
    w = AuditWorld()
    e = event(team="t1")
    p = partition_of(e.chain_key)
    await w.leases.claim(TX, p, "r1", T0, T0 + timedelta(seconds=15))
    w.clock.advance(seconds=16)

    with pytest.raises(LeaseLost) as lost:
        await w.log.record_events([e], fence=PartitionFence("r1", frozenset({p})))

    assert lost.value.partitions == frozenset({p}) and w.events.rows == {}


async def test_an_alert_is_stored_and_announced_once() -> None:
    w = AuditWorld()
    alert = AlertRecord("alr_1", T0, "brute_force", "high", subject="user:u1", user_ids=("u1",))

    assert await w.log.record_alert(alert) is True
    assert await w.log.record_alert(alert) is False
    assert list(w.alerts.alerts) == ["alr_1"] and w.announced == [alert]


# -- queries -----------------------------------------------------------------------------------
async def test_team_events_page_newest_first_until_the_cursor_runs_out() -> None:
    w = AuditWorld()
    mine = [event(team="t1", at=i) for i in range(7)]
    same_time = [event(team="t1", at=3) for _ in range(2)]  # ties are ordered by id
    await w.log.record_events([*mine, *same_time, event(team="t2", at=2)])

    seen, cursor, pages = [], "", 0
    while True:
        page = await w.log.query_events(team_id="t1", limit=4, cursor=cursor)
        seen += page.items
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break

    expected = sorted([*mine, *same_time], key=lambda e: (e.time, e.id), reverse=True)
    assert [e.id for e in seen] == [e.id for e in expected]
    assert pages == 3


async def test_team_queries_filter_by_type_family_and_time() -> None:
    w = AuditWorld()
    login = event("auth.login_failed", team="t1", at=10)
    joined = event("member.joined", team="t1", at=20)
    late = event("auth.login_succeeded", team="t1", at=40)
    await w.log.record_events([login, joined, late])

    page = await w.log.query_events(team_id="t1", types=["auth.*"], until=T0 + timedelta(seconds=30))

    assert page.items == [login] and page.next_cursor == ""


async def test_a_user_sees_only_their_own_security_activity() -> None:
    w = AuditWorld()
    own_login = event("auth.login_succeeded", team="t1", actor="u1", at=1)
    own_session = event("session.revoked", actor="u1", at=2)
    own_team_change = event("member.role_changed", team="t1", actor="u1", at=3)  # not security activity
    someone_else = event("auth.login_failed", team="t1", actor="u2", at=4)
    await w.log.record_events([own_login, own_session, own_team_change, someone_else])

    assert (await w.log.query_events(user_id="u1")).items == [own_session, own_login]
    assert (await w.log.query_events(user_id="u1", actor_user_id="u2")).items == []
    assert (await w.log.query_events(user_id="u1", types=["member.role_changed"])).items == []
    assert (await w.log.query_events(user_id="u1", types=["session.revoked", "member.joined"])).items == [own_session]


async def test_a_query_names_exactly_one_of_team_and_user() -> None:
    w = AuditWorld()
    for kw in ({}, {"team_id": "t1", "user_id": "u1"}):
        with pytest.raises(DomainError):
            await w.log.query_events(**kw)


async def test_an_export_is_oldest_first_and_only_the_teams() -> None:
    w = AuditWorld()
    batch = [event(team="t1", at=5), event(team="t1", at=1), event(team="t2", at=3), event(team="t1", at=9)]
    await w.log.record_events(batch)

    exported = [e async for e in w.log.export_events(team_id="t1")]

    assert [e.id for e in exported] == [batch[1].id, batch[0].id, batch[3].id]


async def test_alerts_of_the_team_and_about_its_members_page_newest_first() -> None:
    w = AuditWorld()
    for i, (team, users) in enumerate([("t1", ()), ("", ("u1",)), ("t2", ()), ("", ("u9",)), ("t1", ())]):
        await w.log.record_alert(
            AlertRecord(f"alr_{i}", T0 + timedelta(seconds=i), "brute_force", "high", team_id=team, user_ids=users)
        )

    first = await w.log.list_alerts(team_id="t1", member_user_ids=["u1"], limit=2)
    rest = await w.log.list_alerts(team_id="t1", member_user_ids=["u1"], limit=2, cursor=first.next_cursor)

    assert [a.id for a in first.items] == ["alr_4", "alr_1"] and first.next_cursor
    assert [a.id for a in rest.items] == ["alr_0"] and rest.next_cursor == ""


# -- verification ------------------------------------------------------------------------------
async def test_an_intact_chain_verifies() -> None:
    w = AuditWorld()
    await w.log.record_events([event(team="t1") for _ in range(5)])

    check = await w.log.verify_chain(team_id="t1")

    assert check.ok and check.events_checked == 5 and check.first_bad_event_id == ""


async def test_verification_names_the_first_tampered_event() -> None:
    w = AuditWorld()
    batch = [event(team="t1", details={"n": i}) for i in range(5)]
    await w.log.record_events(batch)
    key = (team_chain("t1"), 3)
    row = w.events.rows[key]
    w.events.rows[key] = replace(row, event=replace(row.event, details={"n": 99}))  # rewritten in place

    check = await w.log.verify_chain(team_id="t1")

    assert not check.ok and check.first_bad_event_id == batch[2].id


async def test_verification_of_a_user_chain_finds_a_removed_event() -> None:
    w = AuditWorld()
    batch = [event("auth.login_failed", actor="u1") for _ in range(4)]
    await w.log.record_events(batch)
    del w.events.rows[(user_chain("u1"), 2)]

    check = await w.log.verify_chain(user_id="u1")

    assert not check.ok and check.first_bad_event_id == batch[2].id
