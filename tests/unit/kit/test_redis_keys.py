"""The Redis keys two processes must spell alike."""

from __future__ import annotations

from deelrx_kit import redis_keys


def test_revoked_session_key() -> None:
    assert redis_keys.revoked_session("ses_01ABC") == "deelrx:revoked:ses_01ABC"


def test_prefixes_do_not_overlap() -> None:
    prefixes = [
        redis_keys.REVOKED_SESSION_PREFIX,
        redis_keys.RATE_LIMIT_PREFIX,
        redis_keys.IDEMPOTENCY_PREFIX,
        redis_keys.DETECTOR_PREFIX,
        redis_keys.CHANGE_REVISION_PREFIX,
    ]
    assert all(p.startswith("deelrx:") for p in prefixes)
    assert not any(a != b and b.startswith(a) for a in prefixes for b in prefixes)
