"""Memberships: who belongs to a team with which role; joining (idempotent by operation id),
role changes, removal and ownership transfer, under the last-owner and role-grant rules of
`domain/role_rules.py`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from deelrx.common.v1 import common_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.errors import conflict, forbidden, not_found
from services.rbac.changes import TeamChanges, actor_role
from services.rbac.domain import role_rules
from services.rbac.domain.decisions import permissions_of
from services.rbac.domain.permissions import effective_roles, ordered, require_role
from services.rbac.domain.resources import require_key
from services.rbac.domain.team import AppliedOperation, RoleBinding
from services.rbac.ports import RbacStore, Transactions
from services.rbac.snapshots import Snapshots


@dataclass(frozen=True)
class MembershipView:
    binding: RoleBinding
    permissions: list[str]


def view(binding: RoleBinding, roles: dict[str, frozenset[str]]) -> MembershipView:
    return MembershipView(binding, ordered(permissions_of(binding.role, roles)))


class Memberships:
    def __init__(
        self,
        *,
        transactions: Transactions,
        store: RbacStore,
        snapshots: Snapshots,
        changes: TeamChanges,
        clock: Clock,
    ) -> None:
        self.transactions = transactions
        self.store = store
        self.snapshots = snapshots
        self.changes = changes
        self.clock = clock

    # -- reads ----------------------------------------------------------------------------
    async def get(self, user_id: str, team_id: str) -> tuple[MembershipView, int]:
        require_key(user_id, "/user_id")
        require_key(team_id, "/team_id")
        team = await self.snapshots.get(team_id)
        binding = team.members.get(user_id)
        if binding is None:
            raise not_found("not a member of this team")
        return view(binding, team.roles), team.revision

    async def of_user(self, user_id: str) -> list[MembershipView]:
        require_key(user_id, "/user_id")
        async with self.transactions.reading() as session:
            bindings = await self.store.memberships_of_user(session, user_id)
            overrides = await self.store.overrides_for(session, {b.team_id for b in bindings})
        return [view(b, effective_roles(overrides.get(b.team_id, {}))) for b in bindings]

    async def of_team(self, team_id: str) -> list[MembershipView]:
        require_key(team_id, "/team_id")
        team = await self.snapshots.load(team_id)
        members = sorted(team.members.values(), key=lambda b: (b.joined_at, b.user_id))
        return [view(b, team.roles) for b in members]

    # -- changes --------------------------------------------------------------------------
    async def add(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        user_id: str,
        role: str,
        operation_id: str,
    ) -> tuple[MembershipView, bool, int]:
        require_key(team_id, "/team_id")
        require_key(user_id, "/user_id")
        require_role(role)
        require_key(operation_id, "/operation_id")
        try:
            return await self._add_once(context, team_id, user_id, role, operation_id)
        except IntegrityError:
            # The same operation id committed concurrently (under another team's lock):
            # the retry finds it and answers as a replay or a conflict.
            return await self._add_once(context, team_id, user_id, role, operation_id)

    async def _add_once(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        user_id: str,
        role: str,
        operation_id: str,
    ) -> tuple[MembershipView, bool, int]:
        async with self.changes.change(team_id) as change:
            session, state = change.session, change.state
            applied = await self.store.find_operation(session, operation_id)
            created = applied is None
            if applied is not None:
                if (applied.team_id, applied.user_id, applied.role) != (team_id, user_id, role):
                    raise conflict("the operation id was already used for another membership")
                binding = state.members.get(user_id) or RoleBinding(
                    applied.team_id, applied.user_id, applied.role, applied.applied_at
                )
            else:
                if user_id in state.members:
                    raise conflict("the user is already a member of the team")
                now = self.clock.now()
                binding = RoleBinding(team_id, user_id, role, now)
                await self.store.record_operation(session, AppliedOperation(operation_id, team_id, user_id, role, now))
                await self.store.add_membership(session, binding)
                change.user_id = user_id
                change.events.append(
                    self.changes.event(
                        "member.joined", context, team_id, user_id, {"role": role, "operation_id": operation_id}
                    )
                )
        return view(binding, state.roles), created, change.current

    async def change_role(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        user_id: str,
        role: str,
        declared_actor_role: str = "",
    ) -> tuple[MembershipView, int]:
        require_key(team_id, "/team_id")
        require_key(user_id, "/user_id")
        require_role(role)
        async with self.changes.change(team_id) as change:
            state = change.state
            actor = actor_role(state, context, declared_actor_role, required=True)
            current = state.members.get(user_id)
            if current is None:
                raise not_found("not a member of this team")
            role_rules.check_role_change(actor, state.roles, current.role, role, state.owner_count())
            if current.role == role:
                return view(current, state.roles), state.revision
            await self.store.set_role(change.session, team_id, user_id, role)
            change.user_id = user_id
            change.events.append(
                self.changes.event(
                    "member.role_changed", context, team_id, user_id, {"from_role": current.role, "to_role": role}
                )
            )
            updated = RoleBinding(team_id, user_id, role, current.joined_at)
        return view(updated, state.roles), change.current

    async def remove(
        self, context: common_pb2.RequestContext | None, team_id: str, user_id: str, declared_actor_role: str = ""
    ) -> int:
        require_key(team_id, "/team_id")
        require_key(user_id, "/user_id")
        async with self.changes.change(team_id) as change:
            state = change.state
            actor = actor_role(state, context, declared_actor_role, required=False)
            current = state.members.get(user_id)
            if current is None:
                raise not_found("not a member of this team")
            role_rules.check_removal(actor, state.roles, current.role, state.owner_count())
            await self.store.remove_membership(change.session, team_id, user_id)
            change.user_id = user_id
            dropped = len(state.assignments.get(user_id, frozenset()))
            change.events.append(
                self.changes.event(
                    "member.removed", context, team_id, user_id, {"role": current.role, "unassigned_customers": dropped}
                )
            )
        return change.current

    async def transfer_ownership(
        self, context: common_pb2.RequestContext | None, team_id: str, from_user_id: str, to_user_id: str
    ) -> int:
        require_key(team_id, "/team_id")
        require_key(from_user_id, "/from_user_id")
        require_key(to_user_id, "/user_id")
        if context is not None and context.user_id and context.user_id != from_user_id:
            raise forbidden("only the owner may transfer their ownership")
        async with self.changes.change(team_id) as change:
            state = change.state
            from_role, to_role = state.role_of(from_user_id), state.role_of(to_user_id)
            role_rules.check_transfer(from_role, to_role, from_user_id == to_user_id)
            await self.store.set_role(change.session, team_id, to_user_id, "owner")
            await self.store.set_role(change.session, team_id, from_user_id, "manager")
            for user_id, old, new in ((to_user_id, to_role, "owner"), (from_user_id, from_role, "manager")):
                details = {"from_role": old, "to_role": new, "reason": "ownership_transferred"}
                change.events.append(self.changes.event("member.role_changed", context, team_id, user_id, details))
        return change.current
