"""What a session may do in a team, decided from the team's settings and the user.

At a complete login (the user's active team): a member of a team with `mfa_required` who has no
TOTP yet gets an enrollment-only session (the gateway lets it reach only the MFA routes), and the
team's timeouts bound the session. At a team switch the same member is refused instead: an
existing session is never narrowed to enrollment, so the switch must not happen at all."""

from __future__ import annotations

from dataclasses import dataclass

from deelrx_kit.errors import DomainError
from services.identity.domain.model import Team, User

ENROLLMENT_SCOPE = "mfa_enrollment"


@dataclass(frozen=True)
class SessionGrant:
    scope: str  # "" or ENROLLMENT_SCOPE
    # 0: the sessions service's own defaults (no active team).
    idle_timeout_minutes: int
    absolute_timeout_hours: int

    @property
    def enrollment_only(self) -> bool:
        return self.scope == ENROLLMENT_SCOPE


def grant_for(user: User, team: Team | None) -> SessionGrant:
    if team is None:
        return SessionGrant("", 0, 0)
    enrollment = team.settings.mfa_required and not user.mfa_enabled
    return SessionGrant(
        ENROLLMENT_SCOPE if enrollment else "",
        team.settings.session_idle_timeout_minutes,
        team.settings.session_absolute_timeout_hours,
    )


def grant_for_switch(user: User, team: Team) -> SessionGrant:
    """The grant of a session moving into `team`, or `mfa_enrollment_required` while the user
    lacks the second factor the team requires."""
    grant = grant_for(user, team)
    if grant.enrollment_only:
        raise DomainError("mfa_enrollment_required", "This team requires two-factor authentication; enable it first.")
    return grant
