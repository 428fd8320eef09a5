"""What identity hands out about users and teams (never credentials)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    email_verified: bool
    mfa_enabled: bool
    last_active_team_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class TeamSettings:
    session_idle_timeout_minutes: int = 30
    session_absolute_timeout_hours: int = 12
    mfa_required: bool = False


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    plan: str
    billing_email: str
    created_at: datetime
    settings: TeamSettings = field(default_factory=TeamSettings)


@dataclass(frozen=True)
class Credentials:
    """Privileged: only the login path reads this."""

    user_id: str
    password_hash: str


@dataclass(frozen=True)
class PendingSignup:
    id: str
    email: str
    email_normalized: str
    name: str
    password_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class Authentication:
    user: User
    amr: list[str]
    auth_time: datetime
    active_team: Team | None
    mfa_required: bool = False
    mfa_token: str = ""
    device_token: str = ""
