"""Stored audit events and the tamper-evident hash chain they are linked into.

Chains: one per team (`team:<team_id>`); events outside any team chain per acting user
(`user:<user_id>`); events with neither (e.g. a failed login for an unknown email) chain per
keyed subject hash (`subject:<hash>`), and anything else goes to the single `platform` chain.

Link: hash = SHA-256(prev_hash bytes || canonical bytes), hex encoded; the first event of a
chain links to GENESIS_HASH. The canonical bytes are compact, key-sorted JSON of every stored
field (chain position and storage time included), times as RFC 3339 UTC with microseconds, so
changing, reordering or moving any stored value breaks the chain at that event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deelrx_kit import audit_partitions

GENESIS_HASH = "0" * 64

# What a user sees as "their own security activity" (GET /v1/me/security-activity).
SECURITY_TYPE_PREFIXES = ("auth.", "session.", "mfa.", "password.", "user.")


def is_security_type(event_type: str) -> bool:
    return event_type.startswith(SECURITY_TYPE_PREFIXES)


def team_chain(team_id: str) -> str:
    return f"team:{team_id}"


def user_chain(user_id: str) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True)
class EventRecord:
    """One audit event as received (the AuditEvent envelope, flattened)."""

    id: str
    time: datetime
    type: str
    team_id: str = ""
    actor_user_id: str = ""
    actor_ip: str = ""
    actor_user_agent: str = ""
    target_type: str = ""
    target_id: str = ""
    outcome: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    request_id: str = ""
    subject_hash: str = ""
    session_id: str = ""

    @property
    def chain_key(self) -> str:
        # Shared with the producers, which pick the stream partition from it.
        return audit_partitions.chain_key(
            team_id=self.team_id, actor_user_id=self.actor_user_id, subject_hash=self.subject_hash
        )


@dataclass(frozen=True)
class ChainedEvent:
    """An event as stored: the record plus its place in its chain."""

    event: EventRecord
    chain_key: str
    seq: int
    prev_hash: str
    hash: str
    stored_at: datetime


def time_text(dt: datetime) -> str:
    u = dt if dt.tzinfo is UTC else dt.astimezone(UTC)
    if u.year < 1000:  # strftime does not pad such years: keep what older events were hashed with
        return u.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as the strftime above, several times faster (it runs twice per event).
    return u.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical_document(event: EventRecord, *, chain_key: str, seq: int, stored_at: datetime) -> dict[str, Any]:
    """What an event's hash covers: every field of the event and its place in the chain."""
    e = event
    return {
        "chain_key": chain_key,
        "seq": seq,
        "stored_at": time_text(stored_at),
        "id": e.id,
        "time": time_text(e.time),
        "type": e.type,
        "team_id": e.team_id,
        "actor": {"user_id": e.actor_user_id, "ip": e.actor_ip, "user_agent": e.actor_user_agent},
        "target": {"type": e.target_type, "id": e.target_id},
        "outcome": e.outcome,
        "details": e.details,
        "source": e.source,
        "request_id": e.request_id,
        "subject_hash": e.subject_hash,
        "session_id": e.session_id,
    }


_string = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept as it is
_details = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical_bytes(event: EventRecord, *, chain_key: str, seq: int, stored_at: datetime) -> bytes:
    """json.dumps(canonical_document(...), sort_keys=True, separators=(",", ":"),
    ensure_ascii=False), byte for byte, written out with the keys in sorted order: it runs for
    every event stored or verified, and sorting and walking a fresh dict each time cost
    about half of it."""
    e = event
    return (
        f'{{"actor":{{"ip":{_string(e.actor_ip)},"user_agent":{_string(e.actor_user_agent)},'
        f'"user_id":{_string(e.actor_user_id)}}},"chain_key":{_string(chain_key)},'
        f'"details":{_details(e.details)},"id":{_string(e.id)},"outcome":{_string(e.outcome)},'
        f'"request_id":{_string(e.request_id)},"seq":{int(seq)},"session_id":{_string(e.session_id)},'
        f'"source":{_string(e.source)},"stored_at":"{time_text(stored_at)}",'
        f'"subject_hash":{_string(e.subject_hash)},"target":{{"id":{_string(e.target_id)},'
        f'"type":{_string(e.target_type)}}},"team_id":{_string(e.team_id)},"time":"{time_text(e.time)}",'
        f'"type":{_string(e.type)}}}'
    ).encode()


def link_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def chain(event: EventRecord, *, prev_seq: int, prev_hash: str, stored_at: datetime) -> ChainedEvent:
    """Place `event` after the chain head (prev_seq 0 / GENESIS_HASH for a new chain)."""
    seq = prev_seq + 1
    key = event.chain_key
    digest = link_hash(prev_hash, canonical_bytes(event, chain_key=key, seq=seq, stored_at=stored_at))
    return ChainedEvent(event, key, seq, prev_hash, digest, stored_at)


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    events_checked: int
    head_hash: str
    first_bad_event_id: str
    problem: str = ""  # what a signed checkpoint revealed (truncation, rewritten tail)
    checkpoints_checked: int = 0


class ChainVerifier:
    """Recomputes a chain fed in seq order; remembers the first event that does not link."""

    def __init__(
        self, chain_key: str, *, start_seq: int = 0, start_hash: str = GENESIS_HASH, watch: frozenset[int] = frozenset()
    ) -> None:
        """From the genesis, or from a verified (seq, hash); `watch`: seqs whose stored hash
        and event id are kept (to compare with signed checkpoints)."""
        self.chain_key = chain_key
        self.start_seq = start_seq
        self.checked = 0
        self._expected_prev = start_hash
        self._last_hash = start_hash if start_seq else ""
        self.first_bad = ""
        self._bad = False
        self.watch = watch
        self.hash_at: dict[int, str] = {}
        self.id_at: dict[int, str] = {}
        self.last_id = ""

    def feed(self, stored: ChainedEvent) -> None:
        self.checked += 1
        expected_seq = self.start_seq + self.checked
        if expected_seq in self.watch:
            self.hash_at[expected_seq] = stored.hash
            self.id_at[expected_seq] = stored.event.id
        self.last_id = stored.event.id
        recomputed = link_hash(
            self._expected_prev,
            canonical_bytes(stored.event, chain_key=self.chain_key, seq=expected_seq, stored_at=stored.stored_at),
        )
        good = (
            stored.chain_key == self.chain_key
            and stored.event.chain_key == self.chain_key
            and stored.seq == expected_seq
            and stored.prev_hash == self._expected_prev
            and stored.hash == recomputed
        )
        if not good and not self._bad:
            self._bad = True
            self.first_bad = stored.event.id
        # Continue from the stored hash so one bad row is reported once, not every row after it.
        self._expected_prev = stored.hash if _is_hex64(stored.hash) else recomputed
        self._last_hash = stored.hash

    def result(self, head_seq: int, head_hash: str) -> ChainCheck:
        """`head_seq`/`head_hash` from chain_heads: a missing tail is a break too."""
        ok = not self._bad and self.start_seq + self.checked == head_seq and self._last_hash == head_hash
        return ChainCheck(ok, self.checked, self._last_hash, self.first_bad)


def _is_hex64(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
