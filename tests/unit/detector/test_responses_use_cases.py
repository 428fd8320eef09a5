"""Automatic responses over fake identity, sessions and rbac: each rule runs the actions
configured for it (lock the account, end the session, demand a second factor, mail the
owners), each action taken is recorded as a `security.response_taken` audit event, and a
redelivered alert repeats nothing a second detector would not."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from services.detector.domain.rules import MFA_FAILED, Observation, RaisedAlert
from services.detector.responses import parse_responses
from tests.unit.detector.fakes import T0, DetectorWorld

TEAMS = {
    "t1": {"u1": "member", "o1": "owner"},
    "t2": {"u1": "admin", "o2": "owner", "o3": "owner"},
    "t3": {"u9": "owner"},
}


def alert(rule: str, subject: str, *, team: str = "", users: tuple[str, ...] = ()) -> RaisedAlert:
    return RaisedAlert(
        id=f"alr_{rule}",
        rule=rule,
        severity="high",
        subject=subject,
        time=T0,
        team_id=team,
        user_ids=users,
        event_ids=("evt_1",),
        evidence={},
    )


def world(config: str = "") -> DetectorWorld:
    w = DetectorWorld(responses_config=config)
    w.rbac.teams = {t: dict(m) for t, m in TEAMS.items()}
    return w


async def test_brute_force_locks_the_account_and_mails_the_owners_of_its_teams() -> None:
    w = world()

    taken = await w.responses.respond(alert("brute_force", "user:u1", users=("u1",)))

    assert taken == ["lock_account", "notify_owners"]
    [lock] = w.identity.locks
    assert (lock.user_id, lock.alert_id, lock.reason) == ("u1", "alr_brute_force", "security:brute_force")
    assert lock.until.ToDatetime().replace(tzinfo=T0.tzinfo) == w.clock.now() + timedelta(minutes=15)
    assert {(n.team_id, tuple(sorted(n.owner_user_ids))) for n in w.identity.notices} == {
        ("t1", ("o1",)),
        ("t2", ("o2", "o3")),
    }
    assert w.responses_taken() == [
        ("lock_account", "user", "u1"),
        ("notify_owners", "team", "t1"),
        ("notify_owners", "team", "t2"),
    ]
    assert w.sessions.revoked == [] and w.identity.mfa == []


async def test_an_unknown_identifier_is_held_by_its_keyed_hash() -> None:
    w = world()

    await w.responses.respond(alert("brute_force", "subject:h_abc"))

    [lock] = w.identity.locks
    assert (lock.subject_hash, lock.user_id) == ("h_abc", "")
    assert w.responses_taken() == [("lock_account", "subject", "h_abc")]  # no team sees it: nobody mailed


async def test_a_session_anomaly_ends_the_session_and_demands_a_second_factor() -> None:
    w = world()

    taken = await w.responses.respond(alert("session_anomaly", "session:s1", team="t1", users=("u1",)))

    assert taken == ["revoke_session", "require_mfa", "notify_owners"]
    [revoked] = w.sessions.revoked
    assert (revoked.session_id, revoked.reason) == ("s1", "security:session_anomaly")
    assert [(m.user_id, m.reason) for m in w.identity.mfa] == [("u1", "security:session_anomaly")]
    assert [n.team_id for n in w.identity.notices] == ["t1"]  # the alert's own team only
    assert w.responses_taken() == [
        ("revoke_session", "session", "s1"),
        ("require_mfa", "user", "u1"),
        ("notify_owners", "team", "t1"),
    ]
    assert w.identity.locks == []


async def test_password_spray_only_mails_the_owners_by_default() -> None:
    w = world()

    taken = await w.responses.respond(alert("password_spray", "ip:203.0.113.7", users=("u1", "u9")))

    assert taken == ["notify_owners"] and w.identity.locks == [] and w.identity.mfa == []
    assert sorted(n.team_id for n in w.identity.notices) == ["t1", "t2", "t3"]


async def test_responses_are_switched_per_rule_in_configuration() -> None:
    w = world('{"brute_force": [], "password_spray": ["require_mfa", "lock_account"]}')

    assert await w.responses.respond(alert("brute_force", "user:u1", users=("u1",))) == []
    # An IP is not one account: nothing to lock; every account it tried must pass a second factor.
    taken = await w.responses.respond(alert("password_spray", "ip:203.0.113.7", users=("u1", "u9")))

    assert taken == ["require_mfa"]
    assert w.identity.locks == [] and w.identity.notices == []
    assert w.responses_taken() == [("require_mfa", "user", "u1"), ("require_mfa", "user", "u9")]


@pytest.mark.parametrize(
    "config", ['{"nope": []}', '{"brute_force": ["delete_account"]}', '{"brute_force": "lock_account"}', "[]"]
)
def test_configuration_naming_unknown_rules_or_actions_is_refused(config: str) -> None:
    with pytest.raises(ValueError):
        parse_responses(config)


async def test_a_new_device_takes_no_response() -> None:
    w = world()

    assert await w.responses.respond(alert("new_device", "user:u1", users=("u1",))) == []
    assert w.sink.events == []


async def test_a_redelivered_alert_records_the_same_response_events() -> None:
    w = world()
    a = alert("session_anomaly", "session:s1", team="t1", users=("u1",))

    await w.responses.respond(a)
    first = [e.id for e in w.sink.events]
    await w.responses.respond(a)  # identity applies each (alert, action) once; the copies' ids match

    assert [e.id for e in w.sink.events] == first * 2 and len(set(first)) == 3


async def test_an_account_gone_meanwhile_is_skipped_and_other_failures_are_retried() -> None:
    w = world()
    w.identity.missing = {"u1"}

    taken = await w.responses.respond(alert("refresh_token_reuse", "user:u1", users=("u1",)))

    assert taken == ["notify_owners"]  # no second factor for an account that no longer exists
    assert ("require_mfa", "user", "u1") not in w.responses_taken()

    w.identity.fail_with = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError):  # the event stays unacknowledged and comes back
        await w.responses.respond(alert("mfa_guessing", "user:u2", users=("u2",)))


async def test_the_detector_only_raises_and_the_alert_read_back_gets_the_responses() -> None:
    w = world()
    failures = [Observation(f"evt_{i}", T0 + timedelta(seconds=i), MFA_FAILED, user_id="u1") for i in range(5)]

    [raised] = await w.observe(failures)

    assert w.identity.locks == [] and w.sink.events == []  # detection calls no service
    await w.deliver([raised])
    assert [lock.alert_id for lock in w.identity.locks] == [raised.id]
    assert w.responses_taken()[0] == ("lock_account", "user", "u1")
    assert all(e.details["alert_id"] == raised.id for e in w.sink.events)
