"""Rules for team settings, plans and invitations, without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from deelrx_kit.errors import validation_error
from deelrx_kit.plans import PLANS

INVITATION_TTL = timedelta(days=7)
INVITABLE_ROLES = ("owner", "manager", "staff")

# A team may only make sessions stricter than the platform defaults (30 min idle, 12 h absolute).
IDLE_MINUTES_BOUNDS = (5, 30)
ABSOLUTE_HOURS_BOUNDS = (1, 12)


@dataclass(frozen=True)
class Invitation:
    id: str
    team_id: str
    email: str
    email_normalized: str
    role: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_by: str | None = None
    revoked: bool = False

    def usable(self, now: datetime) -> bool:
        return not self.revoked and self.accepted_by is None and self.expires_at > now


def check_idle_minutes(value: int) -> int:
    low, high = IDLE_MINUTES_BOUNDS
    if not low <= value <= high:
        raise validation_error("/settings/session_idle_timeout_minutes", f"must be between {low} and {high}")
    return value


def check_absolute_hours(value: int) -> int:
    low, high = ABSOLUTE_HOURS_BOUNDS
    if not low <= value <= high:
        raise validation_error("/settings/session_absolute_timeout_hours", f"must be between {low} and {high}")
    return value


def check_plan(plan: str) -> str:
    if plan not in PLANS:
        raise validation_error("/plan", "plan must be one of " + ", ".join(PLANS))
    return plan


def check_invitable_role(role: str) -> str:
    if role not in INVITABLE_ROLES:
        raise validation_error("/role", "role must be one of owner, manager, staff")
    return role
