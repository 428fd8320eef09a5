from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.sessions.domain.refresh_tokens import (
    Presentation,
    grace_interval,
    hash_token,
    judge,
    new_refresh_token,
    plausible,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
GRACE = timedelta(seconds=10)


def test_tokens_are_long_random_and_recognisable() -> None:
    a, b = new_refresh_token(), new_refresh_token()
    assert a != b
    assert a.startswith("rt_") and len(a) >= 3 + 43  # 32 random bytes in base64url
    assert plausible(a)
    assert hash_token(a) != a and len(hash_token(a)) == 64


def test_plausible_rejects_garbage() -> None:
    assert not plausible("")
    assert not plausible("rt_short")
    assert not plausible("xx_" + "a" * 50)
    assert not plausible("rt_" + "é" * 50)


def test_grace_is_capped_at_thirty_seconds() -> None:
    assert grace_interval(10) == timedelta(seconds=10)
    assert grace_interval(300) == timedelta(seconds=30)
    assert grace_interval(-1) == timedelta(0)


def test_current_token_rotates() -> None:
    verdict = judge(rotated_at=None, successor_unused=False, successor_recoverable=False, now=NOW, grace=GRACE)
    assert verdict is Presentation.ROTATE


def test_replay_in_grace_with_unused_successor_returns_it() -> None:
    verdict = judge(
        rotated_at=NOW - timedelta(seconds=10), successor_unused=True, successor_recoverable=True, now=NOW, grace=GRACE
    )
    assert verdict is Presentation.RETURN_SUCCESSOR


def test_every_other_replay_is_reuse() -> None:
    late = judge(
        rotated_at=NOW - timedelta(seconds=11), successor_unused=True, successor_recoverable=True, now=NOW, grace=GRACE
    )
    successor_used = judge(
        rotated_at=NOW - timedelta(seconds=1), successor_unused=False, successor_recoverable=True, now=NOW, grace=GRACE
    )
    forgotten = judge(
        rotated_at=NOW - timedelta(seconds=1), successor_unused=True, successor_recoverable=False, now=NOW, grace=GRACE
    )
    assert late is successor_used is forgotten is Presentation.REUSE
