"""Checks: the decisions (Check, BatchCheck, LookupResources, CanGrantRole), answered from
the in-memory team snapshots; no database read in steady state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deelrx_kit.errors import validation_error
from services.rbac.domain import role_rules
from services.rbac.domain.decisions import NOT_A_MEMBER, Decision, ResourceLookup
from services.rbac.domain.permissions import require_role
from services.rbac.domain.resources import require_key, require_resource_id
from services.rbac.snapshots import Snapshots

MAX_BATCH = 100
DEFAULT_PAGE, MAX_PAGE = 50, 200


@dataclass(frozen=True)
class CheckQuery:
    user_id: str
    team_id: str
    permission: str
    resource: str = ""
    min_revision: int = 0


class Checks:
    def __init__(self, snapshots: Snapshots) -> None:
        self.snapshots = snapshots

    async def check(self, query: CheckQuery) -> tuple[Decision, int]:
        require_key(query.user_id, "/user_id")
        require_key(query.team_id, "/team_id")
        team = await self.snapshots.get(query.team_id, query.min_revision)
        return team.check(query.user_id, query.permission, query.resource), team.revision

    async def batch_check(self, queries: Sequence[CheckQuery]) -> list[tuple[Decision, int]]:
        if len(queries) > MAX_BATCH:
            raise validation_error("/checks", f"at most {MAX_BATCH} checks per batch")
        return [await self.check(q) for q in queries]

    async def lookup_resources(
        self,
        user_id: str,
        team_id: str,
        permission: str,
        resource_type: str,
        *,
        limit: int = 0,
        cursor: str = "",
        min_revision: int = 0,
    ) -> tuple[ResourceLookup, int, str]:
        """One page of the resources `user_id` may use with `permission` (or `all`), and the
        cursor of the next page ("" at the end)."""
        require_key(user_id, "/user_id")
        require_key(team_id, "/team_id")
        size = limit or DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise validation_error("/page/limit", f"limit must be between 1 and {MAX_PAGE}")
        if cursor:
            require_resource_id(cursor, "/page/cursor")
        team = await self.snapshots.get(team_id, min_revision)
        found = team.lookup(user_id, permission, resource_type)
        ids = [i for i in found.resource_ids if i > cursor] if cursor else list(found.resource_ids)
        page = ids[:size]
        next_cursor = page[-1] if len(ids) > size else ""
        return ResourceLookup(found.all, tuple(page)), team.revision, next_cursor

    async def can_grant_role(self, user_id: str, team_id: str, role: str) -> tuple[Decision, int]:
        require_key(user_id, "/user_id")
        require_key(team_id, "/team_id")
        require_role(role)
        team = await self.snapshots.get(team_id)
        actor = team.role_of(user_id)
        if actor is None:
            return Decision(False, NOT_A_MEMBER), team.revision
        return role_rules.can_grant(actor, team.roles, role), team.revision
