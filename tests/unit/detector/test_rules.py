"""Detection rules with explicit event times: thresholds, sliding windows, no duplicates."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from services.detector.domain.rules import (
    DEFAULT_RULES,
    LOGIN_FAILED,
    LOGIN_SUCCEEDED,
    MFA_FAILED,
    REFRESH_REUSE,
    SESSION_CREATED,
    Observation,
    RuleEngine,
    Window,
    alert_raised_event_id,
)

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


def feed(engine: RuleEngine, observations: list[Observation]) -> list:
    return [a for o in observations for a in engine.observe(o)]


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


def test_brute_force_fires_at_the_tenth_failure_within_five_minutes() -> None:
    engine = RuleEngine()
    nine = [obs(LOGIN_FAILED, i * 30, user="usr_a", ip=f"198.51.100.{i}") for i in range(9)]
    assert feed(engine, nine) == []
    [alert] = engine.observe(obs(LOGIN_FAILED, 270, user="usr_a", ip="198.51.100.77"))
    assert alert.rule == "brute_force" and alert.severity == "high"
    assert alert.subject == "user:usr_a" and alert.user_ids == ("usr_a",)
    assert alert.team_id == ""
    assert len(alert.event_ids) == 10
    assert alert.evidence["count"] == 10 and alert.evidence["window_seconds"] == 300
    assert alert.evidence["accounts"]["usr_a"]["count"] == 10
    # More failures in the same window: no second alert.
    assert feed(engine, [obs(LOGIN_FAILED, 280 + i, user="usr_a") for i in range(10)]) == []


def test_brute_force_needs_the_failures_inside_one_window() -> None:
    engine = RuleEngine()
    spread = [obs(LOGIN_FAILED, i * 40, user="usr_b") for i in range(20)]  # 8 per 300 s at most
    assert "brute_force" not in rules(feed(engine, spread))


def test_brute_force_fires_again_in_a_later_window_with_another_id() -> None:
    engine = RuleEngine()
    first = feed(engine, [obs(LOGIN_FAILED, i, user="usr_c") for i in range(10)])
    later = feed(engine, [obs(LOGIN_FAILED, 400 + i, user="usr_c") for i in range(10)])
    assert rules(first) == rules(later) == ["brute_force"]
    assert first[0].id != later[0].id


def test_unknown_account_is_tracked_by_its_keyed_hash() -> None:
    engine = RuleEngine()
    alerts = feed(engine, [obs(LOGIN_FAILED, i, subject_hash="hmac-sha256:ab") for i in range(10)])
    assert [(a.rule, a.subject, a.user_ids) for a in alerts] == [("brute_force", "subject:hmac-sha256:ab", ())]


def test_redelivered_events_do_not_count_twice() -> None:
    engine = RuleEngine()
    five = [obs(LOGIN_FAILED, i, user="usr_d") for i in range(5)]
    assert feed(engine, five + five) == []


def test_password_spray_one_ip_against_ten_accounts() -> None:
    engine = RuleEngine()
    ip = "203.0.113.9"
    nine = [obs(LOGIN_FAILED, i * 60, user=f"usr_{i}", ip=ip) for i in range(9)]
    again = [obs(LOGIN_FAILED, 541, user="usr_0", ip=ip)]  # same account again: still nine distinct
    assert feed(engine, nine + again) == []
    [alert] = engine.observe(obs(LOGIN_FAILED, 590, subject_hash="hmac-sha256:zz", ip=ip))
    assert alert.rule == "password_spray" and alert.subject == f"ip:{ip}"
    assert alert.user_ids == tuple(sorted(f"usr_{i}" for i in range(9)))
    assert alert.evidence["distinct_accounts"] == 10 and alert.evidence["unknown_accounts"] == 1
    assert alert.evidence["ips"] == [ip]


def test_password_spray_window_is_ten_minutes() -> None:
    engine = RuleEngine()
    slow = [obs(LOGIN_FAILED, i * 70, user=f"usr_{i}", ip="203.0.113.10") for i in range(10)]  # 630 s
    assert feed(engine, slow) == []


def test_credential_stuffing_needs_failures_accounts_and_a_success() -> None:
    engine = RuleEngine()
    ip = "192.0.2.50"
    failures = [obs(LOGIN_FAILED, i, user=f"usr_{i % 4}", ip=ip) for i in range(25)]  # only 4 accounts
    assert "credential_stuffing" not in rules(feed(engine, failures))
    assert "credential_stuffing" not in rules(feed(engine, [obs(LOGIN_FAILED, 30, user="usr_9", ip=ip)]))
    [alert] = [
        a for a in engine.observe(obs(LOGIN_SUCCEEDED, 31, user="usr_9", ip=ip)) if a.rule == "credential_stuffing"
    ]
    assert alert.severity == "critical"
    assert alert.evidence["failures"] == 26 and alert.evidence["successes"] == 1


def test_mfa_guessing_five_failures_for_one_user() -> None:
    engine = RuleEngine()
    assert feed(engine, [obs(MFA_FAILED, i * 10, user="usr_m") for i in range(4)]) == []
    [alert] = engine.observe(obs(MFA_FAILED, 299, user="usr_m"))
    assert (alert.rule, alert.subject) == ("mfa_guessing", "user:usr_m")


def test_single_event_rules() -> None:
    engine = RuleEngine()
    [reuse] = engine.observe(obs(REFRESH_REUSE, 0, user="usr_r", team="tm_1"))
    assert (reuse.rule, reuse.severity, reuse.team_id) == ("refresh_token_reuse", "high", "tm_1")
    assert engine.observe(obs(REFRESH_REUSE, 10, user="usr_r")) == []  # quiet for one window
    assert engine.observe(obs(SESSION_CREATED, 0, user="usr_n")) == []
    first = engine.observe(obs(SESSION_CREATED, 1, user="usr_n", new_device=True))
    second = engine.observe(obs(SESSION_CREATED, 2, user="usr_n", new_device=True))
    assert rules(first) == rules(second) == ["new_device"]
    assert first[0].severity == "low" and first[0].id != second[0].id


def test_team_id_only_when_every_event_shares_it() -> None:
    engine = RuleEngine()
    mixed = [obs(MFA_FAILED, i, user="usr_t", team="tm_1" if i else "tm_2") for i in range(5)]
    assert [a.team_id for a in feed(engine, mixed)] == [""]
    same = [obs(MFA_FAILED, i, user="usr_u", team="tm_1") for i in range(5)]
    assert [a.team_id for a in feed(engine, same)] == ["tm_1"]


def test_ids_are_deterministic_across_replicas() -> None:
    events = [obs(LOGIN_FAILED, i, user="usr_x", ip="192.0.2.1") for i in range(10)]
    a, b = RuleEngine(), RuleEngine()
    [from_a] = feed(a, events)
    [from_b] = feed(b, events)
    assert from_a.id == from_b.id and from_a.id.startswith("alr_") and len(from_a.id) == 30
    assert alert_raised_event_id(from_a) == alert_raised_event_id(from_b) != from_a.id


def test_idle_subjects_are_forgotten() -> None:
    engine = RuleEngine()
    feed(engine, [obs(LOGIN_FAILED, 0, user=f"usr_{i}", ip="192.0.2.2") for i in range(3)])
    engine.observe(obs(LOGIN_FAILED, 3600, user="usr_z"))
    engine.sweep()
    assert engine.tracked_subjects("brute_force") == 1


def test_rules_are_data() -> None:
    specs = {s.id: s for s in DEFAULT_RULES}
    assert (specs["brute_force"].threshold, specs["brute_force"].window_seconds) == (10, 300)
    assert (specs["password_spray"].threshold, specs["password_spray"].window_seconds) == (10, 600)
    assert (specs["mfa_guessing"].threshold, specs["mfa_guessing"].window_seconds) == (5, 300)
    assert set(specs) == {
        "brute_force",
        "password_spray",
        "credential_stuffing",
        "mfa_guessing",
        "refresh_token_reuse",
        "new_device",
    }
