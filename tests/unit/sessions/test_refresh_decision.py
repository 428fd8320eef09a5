"""The refresh decision, case by case: every branch of `decide` and its boundaries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.sessions.domain.lifetimes import Liveness
from services.sessions.domain.records import RefreshTokenRecord, SessionRecord
from services.sessions.domain.refresh_decision import (
    Expired,
    ReturnGraceSuccessor,
    ReuseDetected,
    Rotate,
    decide,
    grace_replay_details,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=10)

SESSION = SessionRecord(
    id="ses_1",
    user_id="usr_1",
    team_id="tm_1",
    family_id="fam_1",
    device_browser="Firefox",
    device_os="Linux",
    device_type="desktop",
    device_label="Firefox on Linux",
    device_fingerprint="fp",
    ip="203.0.113.7",
    created_at=NOW - timedelta(hours=1),
    last_seen_at=NOW - timedelta(minutes=1),
    expires_at=NOW + timedelta(hours=11),
    idle_timeout_seconds=1800,
    idle_expires_at=NOW + timedelta(minutes=29),
    amr=("pwd",),
    auth_time=NOW - timedelta(hours=1),
    scope="",
)
CURRENT = RefreshTokenRecord("h1", "fam_1", "ses_1", generation=3, issued_at=NOW - timedelta(minutes=5))
SUCCESSOR = RefreshTokenRecord("h2", "fam_1", "ses_1", generation=4, issued_at=NOW - timedelta(seconds=5))


def rotated(ago: timedelta, *, sealed: bool = True) -> RefreshTokenRecord:
    return replace(CURRENT, rotated_at=NOW - ago, successor_hash="h2", successor_sealed=b"sealed" if sealed else None)


def test_the_current_token_of_a_live_session_rotates() -> None:
    assert decide(token=CURRENT, session=SESSION, now=NOW, grace=GRACE) == Rotate(generation=3)


@pytest.mark.parametrize(
    ("session", "liveness"),
    [
        (replace(SESSION, revoked_at=NOW - timedelta(seconds=1)), Liveness.REVOKED),
        (replace(SESSION, idle_expires_at=NOW), Liveness.IDLE_EXPIRED),
        (replace(SESSION, expires_at=NOW, idle_expires_at=NOW), Liveness.EXPIRED),
    ],
)
def test_an_ended_session_is_expired_whatever_the_token(session: SessionRecord, liveness: Liveness) -> None:
    for token in (CURRENT, rotated(timedelta(seconds=1))):
        decision = decide(
            token=token, session=session, now=NOW, grace=GRACE, successor=SUCCESSOR, opened_successor="rt_x"
        )
        assert decision == Expired(liveness)


def test_idle_expiry_is_reached_exactly_at_the_deadline_not_before() -> None:
    session = replace(SESSION, idle_expires_at=NOW + timedelta(microseconds=1))
    assert isinstance(decide(token=CURRENT, session=session, now=NOW, grace=GRACE), Rotate)
    assert decide(token=CURRENT, session=session, now=NOW + timedelta(microseconds=1), grace=GRACE) == Expired(
        Liveness.IDLE_EXPIRED
    )


def test_absolute_expiry_wins_over_a_later_idle_deadline() -> None:
    session = replace(SESSION, expires_at=NOW, idle_expires_at=NOW + timedelta(minutes=5))
    assert decide(token=CURRENT, session=session, now=NOW, grace=GRACE) == Expired(Liveness.EXPIRED)


def test_a_replay_inside_the_grace_with_an_unused_successor_gets_that_successor() -> None:
    for ago in (timedelta(0), timedelta(seconds=10)):  # the grace boundary is inclusive
        decision = decide(
            token=rotated(ago), session=SESSION, now=NOW, grace=GRACE, successor=SUCCESSOR, opened_successor="rt_next"
        )
        assert decision == ReturnGraceSuccessor(successor="rt_next", generation=3)


def test_a_replay_after_the_grace_is_reuse() -> None:
    decision = decide(
        token=rotated(timedelta(seconds=10, microseconds=1)),
        session=SESSION,
        now=NOW,
        grace=GRACE,
        successor=SUCCESSOR,
        opened_successor="rt_next",
    )
    assert decision == ReuseDetected(generation=3)


def test_a_replay_whose_successor_was_already_used_is_reuse() -> None:
    used = replace(SUCCESSOR, rotated_at=NOW - timedelta(seconds=1))
    decision = decide(
        token=rotated(timedelta(seconds=2)), session=SESSION, now=NOW, grace=GRACE, successor=used, opened_successor="x"
    )
    assert decision == ReuseDetected(generation=3)


def test_a_replay_whose_successor_cannot_be_recovered_is_reuse() -> None:
    token = rotated(timedelta(seconds=2))
    missing = decide(token=token, session=SESSION, now=NOW, grace=GRACE, successor=None, opened_successor="x")
    unopened = decide(token=token, session=SESSION, now=NOW, grace=GRACE, successor=SUCCESSOR, opened_successor=None)
    other = replace(SUCCESSOR, token_hash="h_other")
    mismatched = decide(token=token, session=SESSION, now=NOW, grace=GRACE, successor=other, opened_successor="x")
    assert missing == unopened == mismatched == ReuseDetected(generation=3)


def test_no_grace_at_all_makes_every_replay_reuse() -> None:
    decision = decide(
        token=rotated(timedelta(0)),
        session=SESSION,
        now=NOW,
        grace=timedelta(0),
        successor=SUCCESSOR,
        opened_successor="rt_next",
    )
    assert isinstance(decision, ReturnGraceSuccessor)  # rotated at this very instant
    later = decide(
        token=rotated(timedelta(microseconds=1)),
        session=SESSION,
        now=NOW,
        grace=timedelta(0),
        successor=SUCCESSOR,
        opened_successor="rt_next",
    )
    assert later == ReuseDetected(generation=3)


def test_grace_replay_details_name_the_replayer_beside_the_session() -> None:
    decision = ReturnGraceSuccessor(successor="rt_secret", generation=3)
    details = grace_replay_details(SESSION, decision, caller_device="Chrome on macOS", caller_ip="198.51.100.9")
    assert details == {
        "device": "Chrome on macOS",
        "ip": "198.51.100.9",
        "session_device": "Firefox on Linux",
        "session_ip": "203.0.113.7",
        "generation": 3,
    }
    assert "rt_secret" not in repr(details)
