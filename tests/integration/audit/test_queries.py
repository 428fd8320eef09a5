"""Queries: pagination, time ranges, team isolation, a user's own activity, export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx_kit.ids import new_id
from deelrx_kit.timestamps import to_timestamp
from tests.integration.harness import error_code, eventually

from .conftest import AuditHarness, event, publish

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_pages_are_newest_first_and_ranges_half_open(audit: AuditHarness) -> None:
    team = new_id("tm")
    evs = [event("member.joined", team_id=team, when=T0 + timedelta(minutes=i)) for i in range(7)]
    same_time = event("member.removed", team_id=team, when=T0 + timedelta(minutes=3))  # ties on time
    for ev in [*evs, same_time]:
        await publish(audit.js, ev)
    await audit.wait_team_events(team, 8)

    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        resp = await audit.stub.QueryEvents(
            audit_pb2.QueryEventsRequest(team_id=team, page=common_pb2.PageRequest(limit=3, cursor=cursor))
        )
        seen += [e.id for e in resp.events]
        pages += 1
        cursor = resp.page.next_cursor
        if not cursor:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    assert seen[0] == evs[6].id and seen[-1] == evs[0].id
    assert set(seen[3:5]) == {evs[3].id, same_time.id}

    window = audit_pb2.QueryEventsRequest(
        team_id=team,
        range=common_pb2.TimeRange(
            since=to_timestamp(T0 + timedelta(minutes=2)), until=to_timestamp(T0 + timedelta(minutes=5))
        ),
    )
    got = [e.id for e in (await audit.stub.QueryEvents(window)).events]
    assert got == [evs[4].id, *sorted([evs[3].id, same_time.id], reverse=True), evs[2].id]

    typed = await audit.stub.QueryEvents(audit_pb2.QueryEventsRequest(team_id=team, types=["member.removed"]))
    assert [e.id for e in typed.events] == [same_time.id]
    family = await audit.stub.QueryEvents(audit_pb2.QueryEventsRequest(team_id=team, types=["member.*"]))
    assert len(family.events) == 8

    bad_cursor = audit_pb2.QueryEventsRequest(team_id=team, page=common_pb2.PageRequest(cursor="not-a-cursor"))
    assert await error_code(audit.stub.QueryEvents(bad_cursor)) == "validation_error"
    too_many = audit_pb2.QueryEventsRequest(team_id=team, page=common_pb2.PageRequest(limit=201))
    assert await error_code(audit.stub.QueryEvents(too_many)) == "validation_error"

    exported = [e async for e in audit.stub.ExportEvents(audit_pb2.ExportEventsRequest(team_id=team))]
    assert next(e.id for e in exported) == evs[0].id and len(exported) == 8
    assert [e.time.ToDatetime() for e in exported] == sorted(e.time.ToDatetime() for e in exported)


async def test_teams_are_isolated_and_users_see_their_own_security_activity(audit: AuditHarness) -> None:
    team_a, team_b, alice, bob = new_id("tm"), new_id("tm"), new_id("usr"), new_id("usr")
    a_events = [event("member.role_changed", team_id=team_a, user_id=alice) for _ in range(2)]
    b_events = [
        event("member.role_changed", team_id=team_b, user_id=bob),
        event("auth.login_succeeded", team_id=team_b, user_id=alice),
    ]
    alice_own = [event("auth.login_failed", user_id=alice, outcome="failure"), event("mfa.enabled", user_id=alice)]
    bob_own = [event("auth.login_succeeded", user_id=bob)]
    for ev in [*a_events, *b_events, *alice_own, *bob_own]:
        await publish(audit.js, ev)
    await audit.wait_team_events(team_a, 2)
    await audit.wait_team_events(team_b, 2)

    assert {e.id for e in await audit.team_events(team_a)} == {e.id for e in a_events}
    assert {e.team_id for e in await audit.team_events(team_b)} == {team_b}
    assert await audit.team_events(team_a, actor_user_id=bob) == []

    async def activity(**kw: object) -> set[str]:
        resp = await audit.stub.QueryEvents(audit_pb2.QueryEventsRequest(user_id=alice, **kw))
        return {e.id for e in resp.events}

    # Security events by alice anywhere (in team B too), never team admin events or bob's.
    expected = {b_events[1].id, *(e.id for e in alice_own)}
    assert await eventually(activity, lambda got: got == expected) == expected
    assert await activity(types=["mfa.*"]) == {alice_own[1].id}
    assert await activity(types=["member.role_changed"]) == set()
    assert await activity(actor_user_id=bob) == set()

    both = audit_pb2.QueryEventsRequest(team_id=team_a, user_id=alice)
    assert await error_code(audit.stub.QueryEvents(both)) == "validation_error"
    assert await error_code(audit.stub.QueryEvents(audit_pb2.QueryEventsRequest())) == "validation_error"
