"""What a session started by a complete login may do, decided from the user's active team:
a member of a team with `mfa_required` who has no TOTP yet gets an enrollment-only session
(the gateway lets it reach only the MFA routes), and the team's timeouts bound the session."""

from __future__ import annotations

from dataclasses import dataclass

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
