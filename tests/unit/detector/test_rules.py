"""Detection rules with explicit event times: thresholds, sliding windows, no duplicates."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.detector.adapters.memory_windows import MemoryWindowStore
from services.detector.app import Detector
from services.detector.domain.rules import (
    DEFAULT_RULES,
    LOGIN_FAILED,
    LOGIN_SUCCEEDED,
    MFA_FAILED,
    REFRESH_REUSE,
    SESSION_CREATED,
    Observation,
    RaisedAlert,
    RuleSet,
    Window,
    alert_raised_event_id,
    apply_overrides,
)


class RuleEngine:
    """The detector over in-memory windows, collecting what it raises."""

    def __init__(self, specs=DEFAULT_RULES) -> None:
        self.store = MemoryWindowStore()
        self.detector = Detector(RuleSet(tuple(specs)), self.store, sink=None)  # type: ignore[arg-type]

    async def observe(self, o: Observation) -> list[RaisedAlert]:
        return await self.detector.evaluate(o)


T0 = datetime(2026, 5, 1, 9, 0, 3, tzinfo=UTC)
_ids = itertools.count()


def obs(
    type: str, at: float, *, user: str = "", ip: str = "", subject_hash: str = "", team: str = "", **kw
) -> Observation:
    return Observation(
        id=f"evt_{next(_ids)}",
        time=T0 + timedelta(seconds=at),
        type=type,
        team_id=team,
        user_id=user,
        subject_hash=subject_hash,
        ip=ip,
        **kw,
    )


async def feed(engine: RuleEngine, observations: list[Observation]) -> list:
    return [a for o in observations for a in await engine.observe(o)]


def rules(alerts: list) -> list[str]:
    return [a.rule for a in alerts]


def test_window_slides_and_counts_an_event_once() -> None:
    w = Window(300)
    first = obs(LOGIN_FAILED, 0)
    assert w.add(first) and not w.add(first)
    w.add(obs(LOGIN_FAILED, 300))
    assert len(w) == 2  # exactly 300 s apart is still "within 5 minutes"
    w.add(obs(LOGIN_FAILED, 301))
    assert len(w) == 2 and w.entries[0].time == T0 + timedelta(seconds=300)
    assert not w.add(obs(LOGIN_FAILED, -10))  # arrived after it slid out
    w.add(obs(LOGIN_FAILED, 300.5))  # late but inside: kept in time order
    assert [e.time for e in w.entries] == sorted(e.time for e in w.entries)


async def test_brute_force_fires_at_the_tenth_failure_within_five_minutes() -> None:
    engine = RuleEngine()
    nine = [obs(LOGIN_FAILED, i * 30, user="usr_a", ip="198.51.100.1") for i in range(9)]
    assert await feed(engine, nine) == []
    [alert] = await engine.observe(obs(LOGIN_FAILED, 270, user="usr_a", ip="198.51.100.77"))
    assert alert.rule == "brute_force" and alert.severity == "high"
    assert alert.subject == "user:usr_a" and alert.user_ids == ("usr_a",)
    assert alert.team_id == ""
    assert len(alert.event_ids) == 10
    assert alert.evidence["count"] == 10 and alert.evidence["window_seconds"] == 300
    assert alert.evidence["accounts"]["usr_a"]["count"] == 10
    # More failures in the same window: no second alert.
    assert await feed(engine, [obs(LOGIN_FAILED, 280 + i, user="usr_a") for i in range(10)]) == []


async def test_brute_force_needs_the_failures_inside_one_window() -> None:
    engine = RuleEngine()
    spread = [obs(LOGIN_FAILED, i * 40, user="usr_b") for i in range(20)]  # 8 per 300 s at most
    assert "brute_force" not in rules(await feed(engine, spread))


async def test_brute_force_fires_again_in_a_later_window_with_another_id() -> None:
    engine = RuleEngine()
    first = await feed(engine, [obs(LOGIN_FAILED, i, user="usr_c") for i in range(10)])
    later = await feed(engine, [obs(LOGIN_FAILED, 400 + i, user="usr_c") for i in range(10)])
    assert rules(first) == rules(later) == ["brute_force"]
    assert first[0].id != later[0].id


async def test_unknown_account_is_tracked_by_its_keyed_hash() -> None:
    engine = RuleEngine()
    alerts = await feed(engine, [obs(LOGIN_FAILED, i, subject_hash="hmac-sha256:ab") for i in range(10)])
    assert [(a.rule, a.subject, a.user_ids) for a in alerts] == [("brute_force", "subject:hmac-sha256:ab", ())]


async def test_redelivered_events_do_not_count_twice() -> None:
    engine = RuleEngine()
    five = [obs(LOGIN_FAILED, i, user="usr_d") for i in range(5)]
    assert await feed(engine, five + five) == []


async def test_password_spray_one_ip_against_fifteen_accounts() -> None:
    engine = RuleEngine()
    ip = "203.0.113.9"
    fourteen = [obs(LOGIN_FAILED, i * 20, user=f"usr_{i}", ip=ip) for i in range(14)]
    again = [obs(LOGIN_FAILED, 281, user="usr_0", ip=ip)]  # same account again: still fourteen distinct
    assert await feed(engine, fourteen + again) == []
    [alert] = await engine.observe(obs(LOGIN_FAILED, 290, subject_hash="hmac-sha256:zz", ip=ip))
    assert alert.rule == "password_spray" and alert.subject == f"ip:{ip}"
    assert alert.user_ids == tuple(sorted(f"usr_{i}" for i in range(14)))
    assert alert.evidence["distinct_accounts"] == 15 and alert.evidence["unknown_accounts"] == 1
    assert alert.evidence["ips"] == [ip]


async def test_password_spray_window_is_five_minutes() -> None:
    engine = RuleEngine()
    slow = [obs(LOGIN_FAILED, i * 22, user=f"usr_{i}", ip="203.0.113.10") for i in range(15)]  # 308 s
    assert await feed(engine, slow) == []


async def test_credential_stuffing_from_a_rotating_pool_of_one_network() -> None:
    engine = RuleEngine()
    pool = [f"192.0.2.{n}" for n in range(10, 20)]
    tries = [obs(LOGIN_FAILED, i, user=f"usr_{i}", ip=pool[i % len(pool)]) for i in range(18)]
    tries.append(obs(LOGIN_SUCCEEDED, 19, user="usr_19", ip=pool[0]))
    assert "credential_stuffing" not in rules(await feed(engine, tries))  # 19 attempts
    [alert] = [a for a in await engine.observe(obs(LOGIN_FAILED, 20, user="usr_20", ip=pool[1]))]
    assert (alert.rule, alert.severity, alert.subject) == ("credential_stuffing", "critical", "net:192.0.2.0/24")
    assert alert.evidence["failures"] == 19 and alert.evidence["successes"] == 1


async def test_one_ip_against_many_accounts_is_spray_not_stuffing() -> None:
    engine = RuleEngine()
    alerts = await feed(engine, [obs(LOGIN_FAILED, i, user=f"usr_{i}", ip="192.0.2.99") for i in range(30)])
    assert set(rules(alerts)) == {"password_spray"}


async def test_mostly_successful_logins_from_one_network_are_not_stuffing() -> None:
    engine = RuleEngine()
    office = [
        obs(LOGIN_FAILED if i % 4 == 0 else LOGIN_SUCCEEDED, i * 10, user=f"usr_{i}", ip=f"198.51.100.{i % 5}")
        for i in range(40)
    ]
    assert await feed(engine, office) == []


async def test_credential_stuffing_against_one_account_from_many_ips() -> None:
    engine = RuleEngine()
    four = [obs(LOGIN_FAILED, i * 60, user="usr_s", ip=f"203.0.{i}.7") for i in range(4)]
    assert await feed(engine, [*four, obs(LOGIN_FAILED, 250, user="usr_s", ip="203.0.0.7")]) == []
    [alert] = await engine.observe(obs(LOGIN_FAILED, 300, user="usr_s", ip="203.0.9.7"))
    assert (alert.rule, alert.subject) == ("credential_stuffing", "user:usr_s")


async def test_mfa_guessing_five_failures_for_one_user() -> None:
    engine = RuleEngine()
    assert await feed(engine, [obs(MFA_FAILED, i * 10, user="usr_m") for i in range(4)]) == []
    [alert] = await engine.observe(obs(MFA_FAILED, 599, user="usr_m"))
    assert (alert.rule, alert.subject) == ("mfa_guessing", "user:usr_m")


async def test_single_event_rules() -> None:
    engine = RuleEngine()
    [reuse] = await engine.observe(obs(REFRESH_REUSE, 0, user="usr_r", team="tm_1"))
    assert (reuse.rule, reuse.severity, reuse.team_id) == ("refresh_token_reuse", "high", "tm_1")
    assert await engine.observe(obs(REFRESH_REUSE, 10, user="usr_r")) == []  # quiet for one window
    assert await engine.observe(obs(SESSION_CREATED, 0, user="usr_n")) == []
    first = await engine.observe(obs(SESSION_CREATED, 1, user="usr_n", new_device=True))
    second = await engine.observe(obs(SESSION_CREATED, 2, user="usr_n", new_device=True))
    assert rules(first) == rules(second) == ["new_device"]
    assert first[0].severity == "low" and first[0].id != second[0].id


async def test_team_id_only_when_every_event_shares_it() -> None:
    engine = RuleEngine()
    mixed = [obs(MFA_FAILED, i, user="usr_t", team="tm_1" if i else "tm_2") for i in range(5)]
    assert [a.team_id for a in await feed(engine, mixed)] == [""]
    same = [obs(MFA_FAILED, i, user="usr_u", team="tm_1") for i in range(5)]
    assert [a.team_id for a in await feed(engine, same)] == ["tm_1"]


async def test_ids_are_deterministic_across_replicas() -> None:
    events = [obs(LOGIN_FAILED, i, user="usr_x", ip="192.0.2.1") for i in range(10)]
    a, b = RuleEngine(), RuleEngine()
    [from_a] = await feed(a, events)
    [from_b] = await feed(b, events)
    assert from_a.id == from_b.id and from_a.id.startswith("alr_") and len(from_a.id) == 30
    assert alert_raised_event_id(from_a) == alert_raised_event_id(from_b) != from_a.id


def test_rules_are_data_and_configurable() -> None:
    specs = {s.key: s for s in DEFAULT_RULES}
    assert (specs["brute_force"].threshold, specs["brute_force"].window_seconds) == (10, 300)
    assert (specs["password_spray"].threshold, specs["password_spray"].window_seconds) == (15, 300)
    assert (specs["mfa_guessing"].threshold, specs["mfa_guessing"].window_seconds) == (5, 600)
    assert {s.id for s in DEFAULT_RULES} == {
        "brute_force",
        "password_spray",
        "credential_stuffing",
        "mfa_guessing",
        "refresh_token_reuse",
        "new_device",
        "session_anomaly",
        "privilege_escalation",
        "mass_export",
    }
    changed = {
        s.key: s
        for s in apply_overrides(DEFAULT_RULES, {"brute_force": {"threshold": 5}, "new_device": {"enabled": False}})
    }
    assert changed["brute_force"].threshold == 5 and not changed["new_device"].enabled
    assert "new_device" not in {s.id for s in RuleSet(tuple(changed.values())).specs if s.enabled}
    for bad in ({"nope": {}}, {"brute_force": {"threshold": 0}}, {"brute_force": {"event_types": []}}):
        with pytest.raises(ValueError):
            apply_overrides(DEFAULT_RULES, bad)


async def test_a_disabled_rule_raises_nothing() -> None:
    engine = RuleEngine(apply_overrides(DEFAULT_RULES, {"brute_force": {"enabled": False}}))
    assert await feed(engine, [obs(LOGIN_FAILED, i, user="usr_q") for i in range(12)]) == []


async def test_a_grace_replay_alerts_only_from_another_device_or_ip() -> None:
    from deelrx_kit.audit_events import new_event
    from services.detector.adapters.nats_events import observation

    def replay(device: str, ip: str) -> Observation:
        ev = new_event(
            "session.refresh_replayed_in_grace",
            source="sessions",
            now=T0,
            actor_user_id="usr_g",
            details={"device": device, "ip": ip, "session_device": "Firefox on Linux", "session_ip": "203.0.113.7"},
        )
        return observation(ev, T0)

    engine = RuleEngine()
    assert await engine.observe(replay("Firefox on Linux", "203.0.113.7")) == []  # the client retrying
    [alert] = await engine.observe(replay("Chrome on Windows", "198.51.100.9"))
    assert (alert.rule, alert.subject) == ("refresh_token_reuse", "user:usr_g")


_TYPES = sorted({t for s in DEFAULT_RULES for t in s.event_types} | {"customer.updated", "team.updated", "auth.logout"})


@given(
    type=st.sampled_from(_TYPES),
    session_id=st.sampled_from(["", "ses_1"]),
    user_id=st.sampled_from(["", "usr_1"]),
    subject_hash=st.sampled_from(["", "h1"]),
    ip=st.sampled_from(["", "203.0.113.9", "2001:db8::1"]),
    user_agent=st.sampled_from(["", "Firefox"]),
    team_id=st.sampled_from(["", "tm_1"]),
    to_role=st.sampled_from(["", "owner", "staff"]),
    without_sessions=st.booleans(),
)
def test_an_event_passed_over_unread_is_one_no_rule_could_count(
    type: str,
    session_id: str,
    user_id: str,
    subject_hash: str,
    ip: str,
    user_agent: str,
    team_id: str,
    to_role: str,
    without_sessions: bool,
) -> None:
    specs = tuple(s for s in DEFAULT_RULES if not (without_sessions and s.id == "session_anomaly"))
    rules = RuleSet(specs)
    obs = Observation(
        id="evt_1",
        time=T0,
        type=type,
        session_id=session_id,
        user_id=user_id,
        actor_user_id=user_id,
        subject_hash=subject_hash,
        ip=ip,
        user_agent=user_agent,
        team_id=team_id,
        to_role=to_role,
    )
    if not rules.reads(type, session_id=session_id):
        assert not any(r.applies(obs) and r.subject(obs) for r in rules.rules)


def test_events_of_no_rule_are_read_only_for_the_session_rule() -> None:
    rules = RuleSet()
    assert rules.reads(LOGIN_FAILED, session_id="")
    assert rules.reads("customer.updated", session_id="ses_1")  # session_anomaly reads every session event
    assert not rules.reads("customer.updated", session_id="")
    without_sessions = RuleSet(tuple(s for s in DEFAULT_RULES if s.id != "session_anomaly"))
    assert not without_sessions.reads("customer.updated", session_id="ses_1")
