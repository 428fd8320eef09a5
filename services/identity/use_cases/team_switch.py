"""A session moving into another team: the team and what the session may do there.

Membership is rbac's and the caller checks it first; identity decides the team's own policy
(`domain/session_grant.py`), the same rules a login's session gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from deelrx_kit.errors import not_found
from deelrx_kit.ids import has_prefix
from services.identity.domain.model import Team
from services.identity.domain.session_grant import SessionGrant, grant_for_switch
from services.identity.use_cases.core import Core


@dataclass(frozen=True)
class TeamGrant:
    team: Team
    grant: SessionGrant


class TeamSwitch:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def grant(self, user_id: str, team_id: str) -> TeamGrant:
        """The team (for the caller's answer) and the session grant in it; `not_found` for an
        unknown team or user, `mfa_enrollment_required` while the team's policy is unmet."""
        if not has_prefix(team_id, "tm"):
            raise not_found("Team not found")
        stores = self.core.stores
        # One read transaction: the user's TOTP state and the team's settings as of one moment.
        async with self.core.db.reading() as tx:
            team = await stores.teams.get(tx, team_id)
            user = await stores.users.get(tx, user_id) if user_id else None
        if team is None:
            raise not_found("Team not found")
        if user is None:
            raise not_found("User not found")
        return TeamGrant(team, grant_for_switch(user, team))
