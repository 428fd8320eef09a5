"""Roles: each team's role table (the defaults of `domain/permissions.py`, or the permission
set an owner configured for manager and staff)."""

from __future__ import annotations

from collections.abc import Sequence

from deelrx.common.v1 import common_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.errors import forbidden
from services.rbac.changes import TeamChanges, actor_role
from services.rbac.domain import role_rules
from services.rbac.domain.decisions import permissions_of
from services.rbac.domain.permissions import CONFIGURABLE, ROLES, ordered
from services.rbac.domain.resources import require_key
from services.rbac.ports import RbacStore
from services.rbac.snapshots import Snapshots


class Roles:
    def __init__(self, *, store: RbacStore, snapshots: Snapshots, changes: TeamChanges, clock: Clock) -> None:
        self.store = store
        self.snapshots = snapshots
        self.changes = changes
        self.clock = clock

    async def table(self, team_id: str) -> tuple[dict[str, list[str]], list[str]]:
        """Every role's permissions, and the permissions an owner may configure."""
        require_key(team_id, "/team_id")
        team = await self.snapshots.get(team_id)
        roles = team.roles
        return {role: ordered(permissions_of(role, roles)) for role in ROLES}, list(CONFIGURABLE)

    async def set_permissions(
        self, context: common_pb2.RequestContext | None, team_id: str, role: str, permissions: Sequence[str]
    ) -> tuple[list[str], int]:
        require_key(team_id, "/team_id")
        wanted = role_rules.validate_role_permissions(role, permissions)
        async with self.changes.change(team_id) as change:
            state = change.state
            actor = actor_role(state, context, "", required=False)
            if actor is not None and "roles.manage" not in permissions_of(actor, state.roles):
                raise forbidden(f"role {actor} lacks roles.manage")
            before = state.roles[role]
            await self.store.replace_role_permissions(change.session, team_id, role, wanted, self.clock.now())
            change.events.append(
                self.changes.event(
                    "roles.updated",
                    context,
                    team_id,
                    role,
                    {
                        "role": role,
                        "permissions": ordered(wanted),
                        "added": ordered(wanted - before),
                        "removed": ordered(before - wanted),
                    },
                    target_type="role",
                )
            )
        return ordered(wanted), change.current
