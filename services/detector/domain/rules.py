"""Detection rules over audit events (pure: no I/O, no clock of its own).

Time is the events' own time. A window holds the observations of one subject (an account,
an IP, a network, a session...) whose time is within `window_seconds` of the newest one of
that subject ("N events within 5 minutes" = newest minus oldest <= 300 s). An event id counts
once. Where windows are kept (memory, Redis) is the business of a `WindowStore`
(services/detector/ports.py); this module says which subject an event counts for, when a
window triggers, and what the alert says.

Default thresholds and their sources (each can be changed in configuration, see
`apply_overrides` and DEELRX_DETECTOR_RULES):
- brute_force          >= 10 auth.login_failed against one account (user, or keyed hash of an unknown identifier)
                        within 300 s; high. Auth0's brute-force protection default (10 failed
                        attempts for one account).
- password_spray       one IP failing logins against >= 15 distinct accounts within 300 s; high.
                        Few tries per account, many accounts (MITRE ATT&CK T1110.003); 15 is
                        above what one office NAT address produces with ordinary typos.
- credential_stuffing  (a) one /24 (IPv6 /48) network with >= 20 login attempts over >= 10
                        distinct accounts from >= 3 IPs with a failure ratio >= 0.7 within
                        600 s (a rotating proxy pool trying a leaked list, T1110.004; a single
                        IP is password_spray); (b) one account failing from >= 5 distinct IPs
                        within 600 s; critical.
- mfa_guessing         >= 5 auth.mfa_failed for one user within 600 s; high. One mfa_token
                        dies after 5 wrong codes, so 5 failures is a full token's worth.
- refresh_token_reuse  any session.refresh_reuse_detected, or session.refresh_replayed_in_grace (a rotated
                        token replayed inside the grace interval) from another device or IP;
                        high; one alert per user per 300 s. OAuth 2.0 Security BCP (RFC 9700
                        section 4.14.2): reuse of a rotated refresh token signals theft.
- new_device           session.created with details.new_device true; low; every event.
- session_anomaly      one session seen from >= 2 distant networks (different /16, IPv6 /32)
                        or >= 2 user agents within 900 s; medium. OWASP session management:
                        a session's binding to client properties.
- privilege_escalation someone made owner (member.role_changed to owner, member.joined as owner
                        other than at team creation) or sensitive permissions granted to a role
                        (roles.updated adding one of SENSITIVE_PERMISSIONS); high; every event.
- mass_export          >= 3 audit.exported by one user in one team within 3600 s; medium.
                        Exports are rare (a few a month); three in an hour is unusual.

Alert ids derive from (rule, subject, window bucket) (or the event id for single-event
rules), so replaying the same events (redelivery, a second detector) yields the same ids
and JetStream's dedup and the audit store drop the copy.
"""

from __future__ import annotations

import ipaddress
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from deelrx_kit.ids import derived_id

LOGIN_FAILED = "auth.login_failed"
LOGIN_SUCCEEDED = "auth.login_succeeded"
MFA_FAILED = "auth.mfa_failed"
REFRESH_REUSE = "session.refresh_reuse_detected"
REFRESH_GRACE_REPLAY = "session.refresh_replayed_in_grace"
SESSION_CREATED = "session.created"
ROLE_CHANGED = "member.role_changed"
MEMBER_JOINED = "member.joined"
ROLES_UPDATED = "roles.updated"
AUDIT_EXPORTED = "audit.exported"

SENSITIVE_PERMISSIONS = frozenset(
    {"members.manage", "security.manage", "sessions.manage", "audit.read", "team.manage", "customers.assign"}
)

MAX_EVENT_IDS = 100
MAX_IPS = 20


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
    actor_user_id: str = ""  # who acted (for mass_export: who exported)
    session_id: str = ""
    user_agent: str = ""
    to_role: str = ""  # member.role_changed / member.joined
    granted: tuple[str, ...] = ()  # roles.updated: permissions added
    team_creation: bool = False  # member.joined of the team's creator
    other_device: bool = False  # a grace-interval replay from another device or IP

    @property
    def account(self) -> str:
        if self.user_id:
            return f"user:{self.user_id}"
        if self.subject_hash:
            return f"subject:{self.subject_hash}"
        return ""

    def to_json(self) -> str:
        """Deterministic text (the same event gives the same bytes on every replica)."""
        doc = {k: v for k, v in self.__dict__.items() if v not in ("", False, ())}
        doc["time"] = _millis(self.time)
        if self.granted:
            doc["granted"] = list(self.granted)
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> Observation:
        doc = json.loads(text)
        doc["time"] = _EPOCH + timedelta(milliseconds=doc["time"])
        if "granted" in doc:
            doc["granted"] = tuple(doc["granted"])
        return Observation(**doc)


def network_of(ip: str, v4_prefix: int, v6_prefix: int) -> str:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = v4_prefix if addr.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


@dataclass(frozen=True)
class RuleSpec:
    id: str
    kind: str  # event_count | distinct | credential_stuffing | single_event
    description: str
    severity: str
    threshold: int
    window_seconds: int
    event_types: tuple[str, ...]
    per: str  # account | user | ip | network | session | actor_in_team | target
    distinct: str = ""  # distinct: which value is counted (account, ip, network16, user_agent)
    min_accounts: int = 0
    min_ips: int = 0
    min_failure_ratio: float = 0.0
    enabled: bool = True
    variant: str = ""  # tells apart two specs of one rule id (their windows are kept apart)

    @property
    def key(self) -> str:
        return f"{self.id}.{self.variant}" if self.variant else self.id


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
        "distinct",
        "One IP failing logins against many distinct accounts",
        "high",
        threshold=15,
        window_seconds=300,
        event_types=(LOGIN_FAILED,),
        per="ip",
        distinct="account",
    ),
    RuleSpec(
        "credential_stuffing",
        "credential_stuffing",
        "Many accounts tried from one network (rotating IPs) with a high failure ratio",
        "critical",
        threshold=20,
        window_seconds=600,
        event_types=(LOGIN_FAILED, LOGIN_SUCCEEDED),
        per="network",
        min_accounts=10,
        min_ips=3,
        min_failure_ratio=0.7,
        variant="network",
    ),
    RuleSpec(
        "credential_stuffing",
        "distinct",
        "One account failing logins from many IPs",
        "critical",
        threshold=5,
        window_seconds=600,
        event_types=(LOGIN_FAILED,),
        per="account",
        distinct="ip",
        variant="account",
    ),
    RuleSpec(
        "mfa_guessing",
        "event_count",
        "Many failed MFA codes for one user",
        "high",
        threshold=5,
        window_seconds=600,
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
        event_types=(REFRESH_REUSE, REFRESH_GRACE_REPLAY),
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
    RuleSpec(
        "session_anomaly",
        "distinct",
        "One session used from distant networks",
        "medium",
        threshold=2,
        window_seconds=900,
        event_types=(),  # any event of a session
        per="session",
        distinct="network16",
        variant="network",
    ),
    RuleSpec(
        "session_anomaly",
        "distinct",
        "One session used with different user agents",
        "medium",
        threshold=2,
        window_seconds=900,
        event_types=(),
        per="session",
        distinct="user_agent",
        variant="user_agent",
    ),
    RuleSpec(
        "privilege_escalation",
        "single_event",
        "Someone was made owner, or sensitive permissions were granted",
        "high",
        threshold=1,
        window_seconds=0,
        event_types=(ROLE_CHANGED, MEMBER_JOINED, ROLES_UPDATED),
        per="target",
    ),
    RuleSpec(
        "mass_export",
        "event_count",
        "Unusually many audit exports by one user",
        "medium",
        threshold=3,
        window_seconds=3600,
        event_types=(AUDIT_EXPORTED,),
        per="actor_in_team",
    ),
)

RULE_IDS = tuple(dict.fromkeys(s.id for s in DEFAULT_RULES))
OVERRIDABLE = ("threshold", "window_seconds", "severity", "enabled", "min_accounts", "min_ips", "min_failure_ratio")


def apply_overrides(specs: Sequence[RuleSpec], overrides: Mapping[str, Mapping[str, Any]]) -> tuple[RuleSpec, ...]:
    """Configuration: `{rule id or id.variant: {threshold, window_seconds, severity, enabled...}}`."""
    known = {s.id for s in specs} | {s.key for s in specs}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown detector rules in configuration: {sorted(unknown)}")
    out = []
    for spec in specs:
        changes: dict[str, Any] = {}
        for name in (spec.id, spec.key):
            for field_name, value in overrides.get(name, {}).items():
                if field_name not in OVERRIDABLE:
                    raise ValueError(f"{name}: {field_name} cannot be configured")
                changes[field_name] = value
        updated = replace(spec, **changes)
        if updated.threshold < 1 or updated.window_seconds < 0:
            raise ValueError(f"{spec.key}: threshold must be >= 1 and window_seconds >= 0")
        out.append(updated)
    return tuple(out)


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


def _millis(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def alert_raised_event_id(alert: RaisedAlert) -> str:
    return derived_id("evt", alert.time, "security.alert_raised", alert.id)


def _time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- windows ------------------------------------------------------------------------------------
class Window:
    """The observations of one subject within `seconds` of its newest one (in memory)."""

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
def _distinct_value(obs: Observation, what: str) -> str:
    if what == "account":
        return obs.account
    if what == "ip":
        return obs.ip
    if what == "network16":
        return network_of(obs.ip, 16, 32)
    if what == "user_agent":
        return obs.user_agent
    raise ValueError(f"unknown distinct value {what!r}")


class Rule(ABC):
    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec

    def applies(self, obs: Observation) -> bool:
        return not self.spec.event_types or obs.type in self.spec.event_types

    def subject(self, obs: Observation) -> str:
        """The key windows are kept by ("" = the event cannot count for this rule)."""
        per = self.spec.per
        if per == "ip":
            return f"ip:{obs.ip}" if obs.ip and obs.account else ""
        if per == "network":
            net = network_of(obs.ip, 24, 48)
            return f"net:{net}" if net and obs.account else ""
        if per == "user":
            return f"user:{obs.user_id}" if obs.user_id else ""
        if per == "session":
            return f"session:{obs.session_id}" if obs.session_id else ""
        if per == "actor_in_team":
            return f"user:{obs.actor_user_id}@{obs.team_id}" if obs.actor_user_id and obs.team_id else ""
        if per == "target":
            if obs.type == ROLES_UPDATED:
                return f"role:{obs.team_id}:{obs.to_role}"
            return f"user:{obs.user_id}" if obs.user_id else ""
        return obs.account

    def public_subject(self, subject: str) -> str:
        return subject.split("@", 1)[0] if self.spec.per == "actor_in_team" else subject

    @abstractmethod
    def triggered(self, entries: Sequence[Observation]) -> bool: ...

    def evidence(self, entries: Sequence[Observation]) -> dict[str, Any]:
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
    """>= threshold events of the rule's types for one subject."""

    def triggered(self, entries: Sequence[Observation]) -> bool:
        return len(entries) >= self.spec.threshold


class Distinct(Rule):
    """>= threshold distinct values (accounts, IPs, networks, user agents) for one subject."""

    def triggered(self, entries: Sequence[Observation]) -> bool:
        values = {_distinct_value(o, self.spec.distinct) for o in entries}
        values.discard("")
        return len(values) >= self.spec.threshold

    def evidence(self, entries: Sequence[Observation]) -> dict[str, Any]:
        evidence = super().evidence(entries)
        if self.spec.distinct == "user_agent":
            evidence["user_agents"] = sorted({o.user_agent for o in entries if o.user_agent})[:MAX_IPS]
        if self.spec.distinct == "network16":
            evidence["networks"] = sorted({network_of(o.ip, 16, 32) for o in entries if o.ip})[:MAX_IPS]
        return evidence


class CredentialStuffing(Rule):
    """One network: many attempts, many accounts, several IPs, mostly failures."""

    def triggered(self, entries: Sequence[Observation]) -> bool:
        attempts = len(entries)
        if attempts < self.spec.threshold:
            return False
        failures = sum(o.type == LOGIN_FAILED for o in entries)
        accounts = len({o.account for o in entries})
        ips = len({o.ip for o in entries})
        return (
            accounts >= self.spec.min_accounts
            and ips >= self.spec.min_ips
            and failures / attempts >= self.spec.min_failure_ratio
        )

    def evidence(self, entries: Sequence[Observation]) -> dict[str, Any]:
        evidence = super().evidence(entries)
        evidence["failures"] = sum(o.type == LOGIN_FAILED for o in entries)
        evidence["successes"] = sum(o.type == LOGIN_SUCCEEDED for o in entries)
        evidence["min_accounts"] = self.spec.min_accounts
        return evidence


class SingleEvent(Rule):
    """One event is enough (refresh token reuse, a new device, a privilege grant)."""

    def applies(self, obs: Observation) -> bool:
        if not super().applies(obs):
            return False
        if obs.type == SESSION_CREATED:
            return obs.new_device
        if obs.type == REFRESH_GRACE_REPLAY:
            return obs.other_device
        if obs.type == ROLE_CHANGED:
            return obs.to_role == "owner"
        if obs.type == MEMBER_JOINED:
            return obs.to_role == "owner" and not obs.team_creation
        if obs.type == ROLES_UPDATED:
            return bool(SENSITIVE_PERMISSIONS.intersection(obs.granted))
        return True

    def triggered(self, entries: Sequence[Observation]) -> bool:
        return len(entries) >= 1

    def evidence(self, entries: Sequence[Observation]) -> dict[str, Any]:
        evidence = super().evidence(entries)
        last = entries[-1]
        if last.to_role and last.type != ROLES_UPDATED:
            evidence["role"] = last.to_role
        if last.granted:
            evidence["granted"] = sorted(SENSITIVE_PERMISSIONS.intersection(last.granted))
            evidence["role"] = last.to_role
        if last.actor_user_id:
            evidence["by"] = last.actor_user_id
        return evidence


RULE_KINDS: dict[str, type[Rule]] = {
    "event_count": EventCount,
    "distinct": Distinct,
    "credential_stuffing": CredentialStuffing,
    "single_event": SingleEvent,
}


def build_rules(specs: Iterable[RuleSpec]) -> list[Rule]:
    return [RULE_KINDS[s.kind](s) for s in specs if s.enabled]


def alert_id_for(spec: RuleSpec, subject: str, obs: Observation) -> str:
    """Same window bucket (or same event, for a rule without window) -> same id everywhere."""
    if spec.window_seconds > 0:
        epoch = int((obs.time - _EPOCH).total_seconds())
        bucket_start = _EPOCH + timedelta(seconds=epoch - epoch % spec.window_seconds)
        return derived_id("alr", bucket_start, spec.id, subject, str(epoch // spec.window_seconds))
    return derived_id("alr", obs.time, spec.id, subject, obs.id)


def build_alert(rule: Rule, subject: str, obs: Observation, entries: Sequence[Observation]) -> RaisedAlert:
    spec = rule.spec
    teams = {o.team_id for o in entries}
    users = {o.user_id for o in entries if o.user_id}
    if spec.per == "actor_in_team":
        users = {o.actor_user_id for o in entries if o.actor_user_id}
    return RaisedAlert(
        id=alert_id_for(spec, subject, obs),
        rule=spec.id,
        severity=spec.severity,
        subject=rule.public_subject(subject),
        time=obs.time,
        team_id=teams.pop() if len(teams) == 1 else "",
        user_ids=tuple(sorted(users)),
        event_ids=tuple(o.id for o in entries)[-MAX_EVENT_IDS:],
        evidence=rule.evidence(entries),
    )


@dataclass
class RuleSet:
    """The enabled rules, built from specs (defaults with configuration applied)."""

    specs: tuple[RuleSpec, ...] = DEFAULT_RULES
    rules: list[Rule] = field(init=False)
    _types: frozenset[str] = field(init=False)
    _untyped_per: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.rules = build_rules(self.specs)
        self._types = frozenset(t for r in self.rules for t in r.spec.event_types)
        # Rules that read every event, and what they count them by.
        self._untyped_per = frozenset(r.spec.per for r in self.rules if not r.spec.event_types)

    def reads(self, event_type: str, *, session_id: str) -> bool:
        """Whether any rule can count an event of this type (with or without a session): most
        of a CRM's events are read by no rule and are passed over before any work."""
        if event_type in self._types or self._untyped_per - {"session"}:
            return True
        return bool(session_id) and "session" in self._untyped_per
