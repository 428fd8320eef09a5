"""Assignments: which customers a member is assigned to (what the `*_assigned` permissions
reach). Assigning twice or unassigning what is not assigned changes nothing (no revision)."""

from __future__ import annotations

from deelrx.common.v1 import common_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.errors import forbidden, not_found
from services.rbac.changes import TeamChanges, actor_role
from services.rbac.domain.decisions import permissions_of
from services.rbac.domain.resources import require_key, require_resource_id
from services.rbac.ports import RbacStore
from services.rbac.snapshots import Snapshots


class Assignments:
    def __init__(self, *, store: RbacStore, snapshots: Snapshots, changes: TeamChanges, clock: Clock) -> None:
        self.store = store
        self.snapshots = snapshots
        self.changes = changes
        self.clock = clock

    async def of_member(self, team_id: str, user_id: str) -> list[str]:
        require_key(team_id, "/team_id")
        require_key(user_id, "/user_id")
        team = await self.snapshots.get(team_id)
        return sorted(team.assignments.get(user_id, frozenset()))

    async def assign(
        self, context: common_pb2.RequestContext | None, team_id: str, customer_id: str, user_id: str
    ) -> int:
        return await self._set(context, team_id, customer_id, user_id, assigned=True)

    async def unassign(
        self, context: common_pb2.RequestContext | None, team_id: str, customer_id: str, user_id: str
    ) -> int:
        return await self._set(context, team_id, customer_id, user_id, assigned=False)

    async def _set(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        customer_id: str,
        user_id: str,
        *,
        assigned: bool,
    ) -> int:
        require_key(team_id, "/team_id")
        require_resource_id(customer_id, "/customer_id")
        require_key(user_id, "/user_id")
        async with self.changes.change(team_id) as change:
            state = change.state
            actor = actor_role(state, context, "", required=False)
            if actor is not None and "customers.assign" not in permissions_of(actor, state.roles):
                raise forbidden(f"role {actor} lacks customers.assign")
            is_assigned = customer_id in state.assignments.get(user_id, frozenset())
            if assigned and user_id not in state.members:
                raise not_found("the assignee is not a member of this team")
            if assigned == is_assigned:
                return state.revision  # idempotent: nothing changes, no revision, no event
            if assigned:
                await self.store.assign(change.session, team_id, customer_id, user_id, self.clock.now())
            else:
                await self.store.unassign(change.session, team_id, customer_id, user_id)
            change.user_id = user_id
            change.events.append(
                self.changes.event(
                    "customer.assigned" if assigned else "customer.unassigned",
                    context,
                    team_id,
                    customer_id,
                    {"user_id": user_id},
                    target_type="customer",
                )
            )
        return change.current
