"""How long a session lives: the stricter of the platform defaults and the team's policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


@dataclass(frozen=True)
class Lifetime:
    idle: timedelta
    absolute: timedelta


def effective_lifetime(
    *,
    default_idle_minutes: int,
    default_absolute_hours: int,
    policy_idle_minutes: int = 0,
    policy_absolute_hours: int = 0,
) -> Lifetime:
    """Zero (or less) in the policy means "no team limit": the default applies."""
    idle = default_idle_minutes
    if policy_idle_minutes > 0:
        idle = min(idle, policy_idle_minutes)
    absolute = default_absolute_hours
    if policy_absolute_hours > 0:
        absolute = min(absolute, policy_absolute_hours)
    return Lifetime(idle=timedelta(minutes=idle), absolute=timedelta(hours=absolute))


def idle_expiry(last_seen: datetime, idle: timedelta, absolute_expires_at: datetime) -> datetime:
    """Activity pushes the idle deadline forward, never past the absolute one."""
    return min(last_seen + idle, absolute_expires_at)


def capped_absolute(created_at: datetime, current_expires_at: datetime, lifetime: Lifetime) -> datetime:
    """A new (team) policy may shorten a session's absolute lifetime, never lengthen it."""
    return min(current_expires_at, created_at + lifetime.absolute)


class Liveness(Enum):
    LIVE = "live"
    REVOKED = "revoked"
    IDLE_EXPIRED = "idle_expired"
    EXPIRED = "expired"


def liveness(*, now: datetime, revoked: bool, idle_expires_at: datetime, expires_at: datetime) -> Liveness:
    if revoked:
        return Liveness.REVOKED
    if now >= expires_at:
        return Liveness.EXPIRED
    if now >= idle_expires_at:
        return Liveness.IDLE_EXPIRED
    return Liveness.LIVE
