"""The Detector use case over in-memory ports: each rule sends its alert at its threshold and
not one event before, a redelivered event counts once, and replicas sharing one window store
raise one alert between them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import timedelta

import pytest

from services.detector.domain.rules import (
    AUDIT_EXPORTED,
    LOGIN_FAILED,
    LOGIN_SUCCEEDED,
    MFA_FAILED,
    REFRESH_GRACE_REPLAY,
    REFRESH_REUSE,
    ROLE_CHANGED,
    ROLES_UPDATED,
    SESSION_CREATED,
    Observation,
)
from tests.unit.detector.fakes import T0, DetectorWorld

_ids = itertools.count(1)


def obs(type: str, at: float = 0, **kw: object) -> Observation:
    return Observation(id=f"evt_{next(_ids):05d}", time=T0 + timedelta(seconds=at), type=type, **kw)  # type: ignore[arg-type]


# Each case: the events just below the rule's threshold, then the one that reaches it.
Case = tuple[list[Observation], Observation]
CASES: dict[str, Callable[[], Case]] = {
    "brute_force": lambda: (
        [obs(LOGIN_FAILED, i * 30, user_id="u1", ip="203.0.113.7") for i in range(9)],
        obs(LOGIN_FAILED, 300, user_id="u1", ip="203.0.113.7"),  # the 10th, 5 minutes after the first
    ),
    "password_spray": lambda: (
        [obs(LOGIN_FAILED, i, user_id=f"u{i}", ip="203.0.113.7") for i in range(14)],
        obs(LOGIN_FAILED, 20, subject_hash="h_unknown", ip="203.0.113.7"),  # 15th account, unknown to us
    ),
    "credential_stuffing": lambda: (
        [obs(LOGIN_FAILED, i, user_id="u1", ip=f"198.51.{i}.1") for i in range(4)],
        obs(LOGIN_FAILED, 9, user_id="u1", ip="198.51.200.1"),  # the 5th IP against one account
    ),
    "mfa_guessing": lambda: (
        [obs(MFA_FAILED, i * 60, user_id="u1") for i in range(4)],
        obs(MFA_FAILED, 600, user_id="u1"),
    ),
    "refresh_token_reuse": lambda: (
        [obs(REFRESH_GRACE_REPLAY, 0, user_id="u1")],  # a replay in grace from the same device is benign
        obs(REFRESH_REUSE, 1, user_id="u1"),  # any reuse: at once
    ),
    "new_device": lambda: (
        [obs(SESSION_CREATED, 0, user_id="u1")],
        obs(SESSION_CREATED, 1, user_id="u1", new_device=True),
    ),
    "privilege_escalation": lambda: (
        [
            obs(ROLE_CHANGED, 0, team_id="t1", user_id="u2", to_role="admin"),
            obs(ROLES_UPDATED, 1, team_id="t1", to_role="viewer", granted=("customers.read",)),
        ],
        obs(ROLES_UPDATED, 2, team_id="t1", to_role="viewer", granted=("audit.read",)),
    ),
    "mass_export": lambda: (
        [obs(AUDIT_EXPORTED, i * 600, team_id="t1", actor_user_id="u1") for i in range(2)],
        obs(AUDIT_EXPORTED, 3600, team_id="t1", actor_user_id="u1"),
    ),
    "session_anomaly": lambda: (
        [
            obs("session.refreshed", i, user_id="u1", session_id="s1", ip=f"198.51.{i}.9", user_agent="UA")
            for i in range(3)
        ],
        obs("session.refreshed", 5, user_id="u1", session_id="s1", ip="203.0.113.9", user_agent="UA"),  # another /16
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
async def test_each_rule_alerts_at_its_threshold_and_not_below(rule: str) -> None:
    w = DetectorWorld()
    below, trigger = CASES[rule]()

    assert await w.observe(below) == []
    [alert] = await w.observe([trigger])

    assert alert.rule == rule and trigger.id in alert.event_ids
    assert w.sink.alerts == [alert]


def test_every_rule_has_a_threshold_case() -> None:
    assert sorted(CASES) == sorted({s.id for s in DetectorWorld().specs})


async def test_failures_spread_over_more_than_five_minutes_do_not_alert() -> None:
    w = DetectorWorld()
    failures = [obs(LOGIN_FAILED, i * 34, user_id="u1", ip="203.0.113.7") for i in range(10)]  # 306 s

    assert await w.observe(failures) == []


async def test_a_redelivered_event_counts_once() -> None:
    w = DetectorWorld()
    failures = [obs(LOGIN_FAILED, i, user_id="u1", ip="203.0.113.7") for i in range(9)]

    assert await w.observe([f for f in failures for _ in range(2)]) == []  # 18 deliveries, 9 events
    [alert] = await w.observe([obs(LOGIN_FAILED, 10, user_id="u1", ip="203.0.113.7")])
    assert alert.rule == "brute_force" and len(alert.event_ids) == 10


async def test_the_event_that_raised_an_alert_sends_the_same_alert_again_when_redelivered() -> None:
    w = DetectorWorld()
    failures = [obs(LOGIN_FAILED, i, user_id="u1", ip="203.0.113.7") for i in range(10)]
    [first] = await w.observe(failures)

    # Its first delivery may have died before publishing: the copy carries the same id.
    [again] = await w.observe([failures[-1]])
    assert again.id == first.id
    # A later event inside the quiet period raises nothing.
    assert await w.observe([obs(LOGIN_FAILED, 11, user_id="u1", ip="203.0.113.7")]) == []


async def test_two_replicas_sharing_the_windows_raise_one_alert() -> None:
    w = DetectorWorld()
    a, b = w.replica(), w.replica()
    failures = [obs(LOGIN_FAILED, i, user_id="u1", ip="203.0.113.7") for i in range(14)]

    # The durable consumer hands each event to one replica; pairs are handled at the same time.
    for i in range(0, len(failures), 2):
        await asyncio.gather(a.observe(failures[i]), b.observe(failures[i + 1]))

    [alert] = w.sink.alerts
    assert alert.rule == "brute_force" and len(alert.event_ids) == 10  # events of both replicas


async def test_replicas_seeing_the_trigger_together_agree_on_one_alert_id() -> None:
    w = DetectorWorld()
    replicas = [w.replica() for _ in range(3)]
    failures = [obs(LOGIN_FAILED, i, user_id="u1", ip="203.0.113.7") for i in range(9)]
    for i, f in enumerate(failures):
        await replicas[i % 3].observe(f)
    tenth, eleventh, twelfth = (obs(LOGIN_FAILED, 9 + i, user_id="u1", ip="203.0.113.7") for i in range(3))

    await asyncio.gather(*(r.observe(o) for r, o in zip(replicas, (tenth, eleventh, twelfth), strict=True)))

    assert w.sink.rules() == ["brute_force"]  # one published, not one per replica


async def test_mostly_successful_logins_from_one_network_are_not_stuffing() -> None:
    w = DetectorWorld()
    attempts = [
        obs(LOGIN_SUCCEEDED if i % 2 else LOGIN_FAILED, i, user_id=f"u{i % 12}", ip=f"198.51.100.{i % 4}")
        for i in range(30)
    ]

    assert "credential_stuffing" not in [a.rule for a in await w.observe(attempts)]
