"""The hash chain: deterministic links, and any change to a stored field is found."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.audit.domain.events import (
    GENESIS_HASH,
    ChainedEvent,
    ChainVerifier,
    EventRecord,
    canonical_bytes,
    canonical_document,
    chain,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(n: int, team_id: str = "tm_1") -> list[ChainedEvent]:
    out: list[ChainedEvent] = []
    prev_seq, prev_hash = 0, GENESIS_HASH
    for i in range(n):
        ev = EventRecord(
            id=f"evt_{i}",
            time=T0 + timedelta(seconds=i, microseconds=7),
            type="member.joined",
            team_id=team_id,
            details={"i": i},
        )
        stored = chain(ev, prev_seq=prev_seq, prev_hash=prev_hash, stored_at=T0 + timedelta(minutes=i))
        out.append(stored)
        prev_seq, prev_hash = stored.seq, stored.hash
    return out


def verify(rows: list[ChainedEvent], head: ChainedEvent) -> tuple[bool, int, str]:
    v = ChainVerifier(head.chain_key)
    for r in rows:
        v.feed(r)
    result = v.result(head.seq, head.hash)
    return result.ok, result.events_checked, result.first_bad_event_id


def test_chain_keys() -> None:
    assert EventRecord(id="e", time=T0, type="t", team_id="tm_1", actor_user_id="u").chain_key == "team:tm_1"
    assert EventRecord(id="e", time=T0, type="t", actor_user_id="usr_1").chain_key == "user:usr_1"
    assert EventRecord(id="e", time=T0, type="t", subject_hash="h").chain_key == "subject:h"
    assert EventRecord(id="e", time=T0, type="t").chain_key == "platform"


def test_canonical_bytes_are_deterministic_and_cover_time_precision() -> None:
    ev = EventRecord(id="e", time=T0, type="t", details={"b": 1, "a": [1, 2]})
    same = EventRecord(id="e", time=T0, type="t", details={"a": [1, 2], "b": 1})
    assert canonical_bytes(ev, chain_key="k", seq=1, stored_at=T0) == canonical_bytes(
        same, chain_key="k", seq=1, stored_at=T0
    )
    later = replace(ev, time=T0 + timedelta(microseconds=1))
    assert canonical_bytes(ev, chain_key="k", seq=1, stored_at=T0) != canonical_bytes(
        later, chain_key="k", seq=1, stored_at=T0
    )
    assert b'"time":"2026-01-01T00:00:00.000000Z"' in canonical_bytes(ev, chain_key="k", seq=1, stored_at=T0)


def test_intact_chain_verifies() -> None:
    rows = build(5)
    assert rows[0].prev_hash == GENESIS_HASH
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert verify(rows, rows[-1]) == (True, 5, "")


@pytest.mark.parametrize(
    "change",
    [
        lambda e: replace(e, event=replace(e.event, details={"i": 99})),
        lambda e: replace(e, event=replace(e.event, outcome="denied")),
        lambda e: replace(e, event=replace(e.event, time=e.event.time + timedelta(microseconds=1))),
        lambda e: replace(e, stored_at=e.stored_at + timedelta(seconds=1)),
        lambda e: replace(e, hash="f" * 64),
    ],
)
def test_a_changed_row_is_the_first_bad_one(change) -> None:  # type: ignore[no-untyped-def]
    rows = build(5)
    rows[2] = change(rows[2])
    ok, checked, first_bad = verify(rows, rows[-1])
    assert (ok, checked, first_bad) == (False, 5, "evt_2")


def test_removed_rows_break_the_chain() -> None:
    rows = build(5)
    assert verify(rows[:2] + rows[3:], rows[-1])[2] == "evt_3"
    # A truncated tail is caught against the chain head.
    ok, checked, first_bad = verify(rows[:4], rows[-1])
    assert (ok, checked, first_bad) == (False, 4, "")


def test_a_row_moved_to_another_team_is_bad() -> None:
    rows = build(3)
    rows[1] = replace(rows[1], event=replace(rows[1].event, team_id="tm_2"))
    assert verify(rows, rows[-1])[2] == "evt_1"


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


@given(
    fields=st.fixed_dictionaries(
        {
            name: _text
            for name in (
                "id",
                "type",
                "team_id",
                "actor_user_id",
                "actor_ip",
                "actor_user_agent",
                "target_type",
                "target_id",
                "outcome",
                "source",
                "request_id",
                "subject_hash",
                "session_id",
            )
        }
    ),
    details=st.dictionaries(_text, _json, max_size=4),
    when=st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(UTC)),
    stored_at=st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC)),
    chain_key=_text,
    seq=st.integers(min_value=1, max_value=2**40),
)
def test_canonical_bytes_are_the_sorted_compact_json_of_the_canonical_document(
    fields: dict[str, str], details: dict[str, object], when: datetime, stored_at: datetime, chain_key: str, seq: int
) -> None:
    # Every stored chain was hashed over this exact text: the bytes must never change.
    ev = EventRecord(time=when, details=details, **fields)
    doc = canonical_document(ev, chain_key=chain_key, seq=seq, stored_at=stored_at)
    expected = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert canonical_bytes(ev, chain_key=chain_key, seq=seq, stored_at=stored_at) == expected
