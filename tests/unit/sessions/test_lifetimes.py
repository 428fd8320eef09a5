from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.sessions.domain.lifetimes import (
    Liveness,
    capped_absolute,
    effective_lifetime,
    idle_expiry,
    liveness,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_defaults_apply_without_team_limits() -> None:
    life = effective_lifetime(default_idle_minutes=30, default_absolute_hours=12)
    assert life.idle == timedelta(minutes=30)
    assert life.absolute == timedelta(hours=12)


def test_stricter_of_defaults_and_policy() -> None:
    stricter = effective_lifetime(
        default_idle_minutes=30, default_absolute_hours=12, policy_idle_minutes=10, policy_absolute_hours=4
    )
    assert (stricter.idle, stricter.absolute) == (timedelta(minutes=10), timedelta(hours=4))
    laxer = effective_lifetime(
        default_idle_minutes=30, default_absolute_hours=12, policy_idle_minutes=120, policy_absolute_hours=48
    )
    assert (laxer.idle, laxer.absolute) == (timedelta(minutes=30), timedelta(hours=12))


def test_idle_expiry_never_passes_absolute() -> None:
    assert idle_expiry(NOW, timedelta(minutes=30), NOW + timedelta(hours=1)) == NOW + timedelta(minutes=30)
    assert idle_expiry(NOW, timedelta(minutes=30), NOW + timedelta(minutes=5)) == NOW + timedelta(minutes=5)


def test_new_policy_only_shortens() -> None:
    created = NOW
    current = NOW + timedelta(hours=4)
    longer = effective_lifetime(default_idle_minutes=30, default_absolute_hours=12)
    shorter = effective_lifetime(default_idle_minutes=30, default_absolute_hours=12, policy_absolute_hours=2)
    assert capped_absolute(created, current, longer) == current
    assert capped_absolute(created, current, shorter) == NOW + timedelta(hours=2)


def test_liveness_order() -> None:
    idle = NOW + timedelta(minutes=30)
    absolute = NOW + timedelta(hours=12)
    assert liveness(now=NOW, revoked=False, idle_expires_at=idle, expires_at=absolute) is Liveness.LIVE
    assert liveness(now=NOW, revoked=True, idle_expires_at=idle, expires_at=absolute) is Liveness.REVOKED
    assert liveness(now=idle, revoked=False, idle_expires_at=idle, expires_at=absolute) is Liveness.IDLE_EXPIRED
    assert liveness(now=absolute, revoked=False, idle_expires_at=absolute, expires_at=absolute) is Liveness.EXPIRED
