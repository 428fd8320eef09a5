"""Sliding-window detection rules over audit events (pure: no I/O, no clock of its own).

Time is the events' own time. A window holds the events of one subject (an account, an IP)
whose time is within `window_seconds` of the newest event of that subject ("N events within
5 minutes" = newest minus oldest <= 300 s). An event id counts once, so a redelivered event
does not move a counter. After a rule fires for a subject it stays quiet for that subject for
one window; if the attack goes on, it fires again in a later window.

Thresholds are data (RuleSpec, DEFAULT_RULES):
- brute_force          >= 10 auth.login_failed against one account (user, or keyed hash of an
                        unknown identifier) within 300 s; high.
- password_spray       one IP failing logins against >= 10 distinct accounts within 600 s; high.
- credential_stuffing  one IP with >= 20 failed logins across >= 5 distinct accounts and at least
                        1 successful login (some stolen credentials worked) within 600 s; critical.
- mfa_guessing         >= 5 auth.mfa_failed for one user within 300 s; high.
- refresh_token_reuse  any session.refresh_reuse_detected; high (one alert per user per 300 s).
- new_device           session.created with details.new_device true; low (every event).

Alert and message ids derive from (rule, subject, window bucket), so replaying the same events
(redelivery, a second detector) yields the same ids and JetStream's dedup drops the copy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from deelrx_kit.ids import derived_id

LOGIN_FAILED = "auth.login_failed"
LOGIN_SUCCEEDED = "auth.login_succeeded"
MFA_FAILED = "auth.mfa_failed"
REFRESH_REUSE = "session.refresh_reuse_detected"
SESSION_CREATED = "session.created"

MAX_EVENT_IDS = 100
MAX_IPS = 20
MAX_SUBJECTS_PER_RULE = 100_000
SWEEP_EVERY = 1000


@dataclass(frozen=True)
class Observation:
    """What the rules need from one audit event."""

    id: str
    time: datetime
    type: str
    team_id: str = ""
    user_id: str = ""  # the account concerned, when it is a known user
    subject_hash: str = ""  # keyed hash of an identifier that matches no account
    ip: str = ""
    new_device: bool = False

    @property
    def account(self) -> str:
        if self.user_id:
            return f"user:{self.user_id}"
        if self.subject_hash:
            return f"subject:{self.subject_hash}"
        return ""


@dataclass(frozen=True)
class RuleSpec:
    id: str
    kind: str  # event_count | distinct_accounts | credential_stuffing | single_event
    description: str
    severity: str
    threshold: int
    window_seconds: int
    event_types: tuple[str, ...]
    per: str  # what a window is kept by: account | user | ip
    min_accounts: int = 0
    min_successes: int = 0


DEFAULT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "brute_force",
        "event_count",
        "Many failed logins against one account",
        "high",
        threshold=10,
        window_seconds=300,
        event_types=(LOGIN_FAILED,),
        per="account",
    ),
    RuleSpec(
        "password_spray",
        "distinct_accounts",
        "One IP failing logins against many distinct accounts",
        "high",
        threshold=10,
        window_seconds=600,
        event_types=(LOGIN_FAILED,),
        per="ip",
    ),
    RuleSpec(
        "credential_stuffing",
        "credential_stuffing",
        "One IP with many failed logins across several accounts, some of which succeeded",
        "critical",
        threshold=20,
        window_seconds=600,
        event_types=(LOGIN_FAILED, LOGIN_SUCCEEDED),
        per="ip",
        min_accounts=5,
        min_successes=1,
    ),
    RuleSpec(
        "mfa_guessing",
        "event_count",
        "Many failed MFA codes for one user",
        "high",
        threshold=5,
        window_seconds=300,
        event_types=(MFA_FAILED,),
        per="user",
    ),
    RuleSpec(
        "refresh_token_reuse",
        "single_event",
        "A rotated refresh token was used again (likely stolen)",
        "high",
        threshold=1,
        window_seconds=300,
        event_types=(REFRESH_REUSE,),
        per="user",
    ),
    RuleSpec(
        "new_device",
        "single_event",
        "A session was created from a device not seen before for the user",
        "low",
        threshold=1,
        window_seconds=0,
        event_types=(SESSION_CREATED,),
        per="user",
    ),
)


@dataclass(frozen=True)
class RaisedAlert:
    id: str
    rule: str
    severity: str
    subject: str
    time: datetime
    team_id: str
    user_ids: tuple[str, ...]
    event_ids: tuple[str, ...]
    evidence: dict[str, Any]


# -- deterministic ids ------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def alert_raised_event_id(alert: RaisedAlert) -> str:
    return derived_id("evt", alert.time, "security.alert_raised", alert.id)


def _time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- windows ------------------------------------------------------------------------------------
class Window:
    """The observations of one subject within `seconds` of its newest one."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.entries: list[Observation] = []  # sorted by time
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def newest(self) -> datetime:
        return self.entries[-1].time

    def add(self, obs: Observation) -> bool:
        """Insert in time order and slide; False when this event id is already counted."""
        if obs.id in self._ids:
            return False
        if self.entries and obs.time < self.newest - timedelta(seconds=self.seconds):
            return False  # arrived after it slid out: too old to count
        i = len(self.entries)
        while i > 0 and self.entries[i - 1].time > obs.time:
            i -= 1
        self.entries.insert(i, obs)
        self._ids.add(obs.id)
        self.slide(self.newest)
        return True

    def slide(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.seconds)
        drop = 0
        while drop < len(self.entries) and self.entries[drop].time < horizon:
            self._ids.discard(self.entries[drop].id)
            drop += 1
        if drop:
            del self.entries[:drop]


# -- rules ----------------------------------------------------------------------------------------
class Rule(ABC):
    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec

    def applies(self, obs: Observation) -> bool:
        return obs.type in self.spec.event_types

    def subject(self, obs: Observation) -> str:
        """The key windows are kept by ("" = the event cannot count for this rule)."""
        if self.spec.per == "ip":
            return f"ip:{obs.ip}" if obs.ip and obs.account else ""
        if self.spec.per == "user":
            return f"user:{obs.user_id}" if obs.user_id else ""
        return obs.account

    @abstractmethod
    def triggered(self, window: Window) -> bool: ...

    def evidence(self, window: Window) -> dict[str, Any]:
        entries = window.entries
        accounts: dict[str, dict[str, Any]] = {}
        for o in entries:
            if o.user_id:
                a = accounts.setdefault(o.user_id, {"count": 0, "ips": [], "event_ids": []})
                a["count"] += 1
                if o.ip and o.ip not in a["ips"] and len(a["ips"]) < MAX_IPS:
                    a["ips"].append(o.ip)
                if len(a["event_ids"]) < MAX_EVENT_IDS:
                    a["event_ids"].append(o.id)
        return {
            "window_seconds": self.spec.window_seconds,
            "threshold": self.spec.threshold,
            "count": len(entries),
            "first_seen": _time(entries[0].time),
            "last_seen": _time(entries[-1].time),
            "ips": sorted({o.ip for o in entries if o.ip})[:MAX_IPS],
            "distinct_accounts": len({o.account for o in entries if o.account}),
            "unknown_accounts": len({o.subject_hash for o in entries if o.subject_hash and not o.user_id}),
            "accounts": accounts,
        }


class EventCount(Rule):
    """>= threshold events of the rule's types for one account."""

    def triggered(self, window: Window) -> bool:
        return len(window) >= self.spec.threshold


class DistinctAccounts(Rule):
    """One IP touching >= threshold distinct accounts."""

    def triggered(self, window: Window) -> bool:
        return len({o.account for o in window.entries}) >= self.spec.threshold


class CredentialStuffing(Rule):
    """One IP: >= threshold failures, >= min_accounts distinct accounts, >= min_successes successes."""

    def triggered(self, window: Window) -> bool:
        failures = sum(o.type == LOGIN_FAILED for o in window.entries)
        successes = sum(o.type == LOGIN_SUCCEEDED for o in window.entries)
        accounts = len({o.account for o in window.entries})
        return (
            failures >= self.spec.threshold
            and accounts >= self.spec.min_accounts
            and successes >= self.spec.min_successes
        )

    def evidence(self, window: Window) -> dict[str, Any]:
        evidence = super().evidence(window)
        evidence["failures"] = sum(o.type == LOGIN_FAILED for o in window.entries)
        evidence["successes"] = sum(o.type == LOGIN_SUCCEEDED for o in window.entries)
        evidence["min_accounts"] = self.spec.min_accounts
        return evidence


class SingleEvent(Rule):
    """One event is enough (refresh token reuse, a new device)."""

    def applies(self, obs: Observation) -> bool:
        if not super().applies(obs):
            return False
        return obs.new_device if obs.type == SESSION_CREATED else True

    def triggered(self, window: Window) -> bool:
        return len(window) >= 1


RULE_KINDS: dict[str, type[Rule]] = {
    "event_count": EventCount,
    "distinct_accounts": DistinctAccounts,
    "credential_stuffing": CredentialStuffing,
    "single_event": SingleEvent,
}


def build_rules(specs: Iterable[RuleSpec]) -> list[Rule]:
    return [RULE_KINDS[s.kind](s) for s in specs]


@dataclass
class _RuleState:
    windows: OrderedDict[str, Window] = field(default_factory=OrderedDict)
    quiet_until: dict[str, datetime] = field(default_factory=dict)


class RuleEngine:
    """Feeds observations to every rule; returns the alerts they raise."""

    def __init__(self, specs: Sequence[RuleSpec] = DEFAULT_RULES) -> None:
        self.rules = build_rules(specs)
        self._state = {r.spec.id: _RuleState() for r in self.rules}
        self._seen = 0
        self._latest: datetime | None = None

    @property
    def specs(self) -> list[RuleSpec]:
        return [r.spec for r in self.rules]

    def observe(self, obs: Observation) -> list[RaisedAlert]:
        raised: list[RaisedAlert] = []
        for rule in self.rules:
            if not rule.applies(obs):
                continue
            subject = rule.subject(obs)
            if not subject:
                continue
            alert = self._evaluate(rule, subject, obs)
            if alert is not None:
                raised.append(alert)
        self._latest = obs.time if self._latest is None else max(self._latest, obs.time)
        self._seen += 1
        if self._seen % SWEEP_EVERY == 0:
            self.sweep()
        return raised

    def _evaluate(self, rule: Rule, subject: str, obs: Observation) -> RaisedAlert | None:
        spec = rule.spec
        state = self._state[spec.id]
        window = state.windows.get(subject)
        if window is None:
            window = state.windows[subject] = Window(spec.window_seconds)
            if len(state.windows) > MAX_SUBJECTS_PER_RULE:
                state.windows.popitem(last=False)  # forget the least recently active subject
        state.windows.move_to_end(subject)
        if not window.add(obs) or not rule.triggered(window):
            return None
        quiet = state.quiet_until.get(subject)
        if quiet is not None and obs.time < quiet:
            return None
        if spec.window_seconds > 0:
            state.quiet_until[subject] = obs.time + timedelta(seconds=spec.window_seconds)
            epoch = int((obs.time - _EPOCH).total_seconds())
            bucket_start = _EPOCH + timedelta(seconds=epoch - epoch % spec.window_seconds)
            alert_id = derived_id("alr", bucket_start, spec.id, subject, str(epoch // spec.window_seconds))
        else:
            alert_id = derived_id("alr", obs.time, spec.id, subject, obs.id)
        entries = window.entries
        teams = {o.team_id for o in entries}
        event_ids = [o.id for o in entries][-MAX_EVENT_IDS:]
        return RaisedAlert(
            id=alert_id,
            rule=spec.id,
            severity=spec.severity,
            subject=subject,
            time=obs.time,
            team_id=teams.pop() if len(teams) == 1 else "",
            user_ids=tuple(sorted({o.user_id for o in entries if o.user_id})),
            event_ids=tuple(event_ids),
            evidence=rule.evidence(window),
        )

    def sweep(self) -> None:
        """Forget subjects with nothing left in their window (memory stays bounded)."""
        if self._latest is None:
            return
        for rule in self.rules:
            state = self._state[rule.spec.id]
            horizon = self._latest - timedelta(seconds=rule.spec.window_seconds)
            for key in [k for k, w in state.windows.items() if not w.entries or w.newest < horizon]:
                del state.windows[key]
            for key in [k for k, t in state.quiet_until.items() if t <= self._latest]:
                del state.quiet_until[key]

    def tracked_subjects(self, rule_id: str) -> int:
        return len(self._state[rule_id].windows)
