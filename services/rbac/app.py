"""rbac use cases: membership changes, role tables, assignments and decisions.

Every change runs in one transaction that first takes the team's revision row (serializing
changes of one team on both backends), re-reads the team, applies the domain rules, writes,
increments the revision and stages AuthorizationChanged plus the audit events in the outbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError, conflict, forbidden, not_found, validation_error
from deelrx_kit.ids import new_id
from deelrx_kit.nats_bus import RBAC_CHANGED_PREFIX
from deelrx_kit.outbox import Outbox
from services.rbac.adapters.sql import AppliedOperation, RbacStore
from services.rbac.domain import role_rules
from services.rbac.domain.decisions import NOT_A_MEMBER, Decision, ResourceLookup, permissions_of
from services.rbac.domain.permissions import (
    CONFIGURABLE,
    ROLES,
    effective_roles,
    ordered,
    require_role,
)
from services.rbac.domain.resources import require_key, require_resource_id
from services.rbac.domain.team import RoleBinding, TeamAuthorization
from services.rbac.team_cache import TeamCache

log = structlog.get_logger(__name__)

SOURCE = "rbac"
MAX_BATCH = 100
DEFAULT_PAGE, MAX_PAGE = 50, 200


@dataclass(frozen=True)
class MembershipView:
    binding: RoleBinding
    permissions: list[str]


@dataclass(frozen=True)
class CheckQuery:
    user_id: str
    team_id: str
    permission: str
    resource: str = ""
    min_revision: int = 0


@dataclass
class _TeamChange:
    """What one change transaction collects before it commits."""

    session: AsyncSession
    state: TeamAuthorization
    events: list[audit_pb2.AuditEvent] = field(default_factory=list)
    # The member the change is about; empty for team-wide changes (role tables).
    user_id: str = ""
    revision: int = 0

    @property
    def current(self) -> int:
        """The team's revision after this change (or as it was, when nothing changed)."""
        return self.revision or self.state.revision


def _view(binding: RoleBinding, roles: dict[str, frozenset[str]]) -> MembershipView:
    return MembershipView(binding, ordered(permissions_of(binding.role, roles)))


class Rbac:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        store: RbacStore,
        outbox: Outbox,
        clock: Clock,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.store = store
        self.outbox = outbox
        self.audit = AuditTrail(outbox, source=SOURCE, clock=clock)
        self.clock = clock
        self.cache = TeamCache(self._load_team)
        # Core NATS connection for announcing a change before answering (the outbox also
        # carries it, durably); set once connected.
        self.nc: Any = None

    async def _load_team(self, team_id: str) -> TeamAuthorization:
        async with reading(self.sessionmaker) as session:
            return await self.store.load_team(session, team_id)

    async def stored_revisions(self) -> dict[str, int]:
        async with reading(self.sessionmaker) as session:
            return await self.store.all_revisions(session)

    async def resync(self, *, preload: bool = False) -> None:
        """Bring the in-memory teams up to the stored revisions (at start and after a NATS
        reconnection, when change messages may have been missed)."""
        revisions = await self.stored_revisions()
        stale = self.cache.resync(revisions)
        loaded = await self.cache.preload(revisions) if preload else 0
        log.info("rbac_resynced", teams=len(revisions), stale=stale, preloaded=loaded)

    # -- decisions (hot path) ---------------------------------------------------------------
    async def check(self, query: CheckQuery) -> tuple[Decision, int]:
        require_key(query.user_id, "/user_id")
        require_key(query.team_id, "/team_id")
        team = await self.cache.get(query.team_id, query.min_revision)
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
        team = await self.cache.get(team_id, min_revision)
        found = team.lookup(user_id, permission, resource_type)
        ids = [i for i in found.resource_ids if i > cursor] if cursor else list(found.resource_ids)
        page = ids[:size]
        next_cursor = page[-1] if len(ids) > size else ""
        return ResourceLookup(found.all, tuple(page)), team.revision, next_cursor

    async def can_grant_role(self, user_id: str, team_id: str, role: str) -> tuple[Decision, int]:
        require_key(user_id, "/user_id")
        require_key(team_id, "/team_id")
        require_role(role)
        team = await self.cache.get(team_id)
        actor = team.role_of(user_id)
        if actor is None:
            return Decision(False, NOT_A_MEMBER), team.revision
        return role_rules.can_grant(actor, team.roles, role), team.revision

    # -- reads ----------------------------------------------------------------------------
    async def get_membership(self, user_id: str, team_id: str) -> tuple[MembershipView, int]:
        require_key(user_id, "/user_id")
        require_key(team_id, "/team_id")
        team = await self.cache.get(team_id)
        binding = team.members.get(user_id)
        if binding is None:
            raise not_found("not a member of this team")
        return _view(binding, team.roles), team.revision

    async def list_memberships(self, user_id: str) -> list[MembershipView]:
        require_key(user_id, "/user_id")
        async with reading(self.sessionmaker) as session:
            bindings = await self.store.memberships_of_user(session, user_id)
            overrides = await self.store.overrides_for(session, {b.team_id for b in bindings})
        return [_view(b, effective_roles(overrides.get(b.team_id, {}))) for b in bindings]

    async def list_members(self, team_id: str) -> list[MembershipView]:
        require_key(team_id, "/team_id")
        team = await self._load_team(team_id)
        members = sorted(team.members.values(), key=lambda b: (b.joined_at, b.user_id))
        return [_view(b, team.roles) for b in members]

    async def get_roles(self, team_id: str) -> tuple[dict[str, list[str]], list[str]]:
        require_key(team_id, "/team_id")
        team = await self.cache.get(team_id)
        roles = team.roles
        return {role: ordered(permissions_of(role, roles)) for role in ROLES}, list(CONFIGURABLE)

    async def list_assigned_customers(self, team_id: str, user_id: str) -> list[str]:
        require_key(team_id, "/team_id")
        require_key(user_id, "/user_id")
        team = await self.cache.get(team_id)
        return sorted(team.assignments.get(user_id, frozenset()))

    # -- changes --------------------------------------------------------------------------
    @asynccontextmanager
    async def _team_change(self, team_id: str) -> AsyncIterator[_TeamChange]:
        async with transaction(self.sessionmaker) as session:
            await self.store.lock_team(session, team_id)
            change = _TeamChange(session, await self.store.load_team(session, team_id))
            yield change
            if change.events:
                change.revision = await self.store.bump_revision(session, team_id)
                notice = rbac_pb2.AuthorizationChanged(
                    team_id=team_id, revision=change.revision, user_id=change.user_id
                )
                await self.outbox.add(session, RBAC_CHANGED_PREFIX + team_id, notice, new_id("evt"))
                for event in change.events:
                    event.details.update({"revision": change.revision})
                    await self.audit.stage(session, event)
        if change.revision:
            self.outbox.notify()
            await self._announce(team_id, change.revision, change.user_id)
            # Our own write: the next Check must find it in memory, so load it here.
            await self.cache.refresh(team_id, change.revision)
            log.info("rbac_changed", team_id=team_id, revision=change.revision, events=len(change.events))

    async def _announce(self, team_id: str, revision: int, user_id: str) -> None:
        """Tell other replicas and AuthzClient caches now, before the caller gets its answer,
        so a request that follows this one is decided at this revision. Best effort: the
        same notice is in the outbox."""
        if self.nc is None or not self.nc.is_connected:
            return
        notice = rbac_pb2.AuthorizationChanged(team_id=team_id, revision=revision, user_id=user_id)
        try:
            await self.nc.publish(RBAC_CHANGED_PREFIX + team_id, notice.SerializeToString())
            await self.nc.flush(timeout=1)
        except Exception as exc:  # noqa: BLE001 - the outbox relay delivers it
            log.warning("rbac_announce_failed", team_id=team_id, error=str(exc))

    @staticmethod
    def _actor_role(
        state: TeamAuthorization, context: common_pb2.RequestContext | None, declared: str, *, required: bool
    ) -> str | None:
        """The acting member's role: stored role when the context names the actor (the truth
        beats what a caller declares), else the declared role, else None (internal caller)."""
        if context is not None and context.user_id:
            role = state.role_of(context.user_id)
            if role is None:
                raise forbidden("the actor is not a member of this team")
            return role
        if declared:
            return require_role(declared, "/actor_role")
        if required:
            raise validation_error("/actor_role", "the acting member's role is required")
        return None

    async def add_member(
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
            return await self._add_member_once(context, team_id, user_id, role, operation_id)
        except IntegrityError:
            # The same operation id committed concurrently (under another team's lock):
            # the retry finds it and answers as a replay or a conflict.
            return await self._add_member_once(context, team_id, user_id, role, operation_id)

    async def _add_member_once(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        user_id: str,
        role: str,
        operation_id: str,
    ) -> tuple[MembershipView, bool, int]:
        async with self._team_change(team_id) as change:
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
                    self.audit.build(
                        "member.joined",
                        context,
                        team_id=team_id,
                        target=("user", user_id),
                        details={"role": role, "operation_id": operation_id},
                    )
                )
        return _view(binding, state.roles), created, change.current

    async def change_role(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        user_id: str,
        role: str,
        actor_role: str = "",
    ) -> tuple[MembershipView, int]:
        require_key(team_id, "/team_id")
        require_key(user_id, "/user_id")
        require_role(role)
        async with self._team_change(team_id) as change:
            state = change.state
            actor = self._actor_role(state, context, actor_role, required=True)
            current = state.members.get(user_id)
            if current is None:
                raise not_found("not a member of this team")
            role_rules.check_role_change(actor, state.roles, current.role, role, state.owner_count())
            if current.role == role:
                return _view(current, state.roles), state.revision
            await self.store.set_role(change.session, team_id, user_id, role)
            change.user_id = user_id
            change.events.append(
                self.audit.build(
                    "member.role_changed",
                    context,
                    team_id=team_id,
                    target=("user", user_id),
                    details={"from_role": current.role, "to_role": role},
                )
            )
            updated = RoleBinding(team_id, user_id, role, current.joined_at)
        return _view(updated, state.roles), change.current

    async def remove_member(
        self, context: common_pb2.RequestContext | None, team_id: str, user_id: str, actor_role: str = ""
    ) -> int:
        require_key(team_id, "/team_id")
        require_key(user_id, "/user_id")
        async with self._team_change(team_id) as change:
            state = change.state
            actor = self._actor_role(state, context, actor_role, required=False)
            current = state.members.get(user_id)
            if current is None:
                raise not_found("not a member of this team")
            role_rules.check_removal(actor, state.roles, current.role, state.owner_count())
            await self.store.remove_membership(change.session, team_id, user_id)
            change.user_id = user_id
            dropped = len(state.assignments.get(user_id, frozenset()))
            change.events.append(
                self.audit.build(
                    "member.removed",
                    context,
                    team_id=team_id,
                    target=("user", user_id),
                    details={"role": current.role, "unassigned_customers": dropped},
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
        async with self._team_change(team_id) as change:
            state = change.state
            from_role, to_role = state.role_of(from_user_id), state.role_of(to_user_id)
            role_rules.check_transfer(from_role, to_role, from_user_id == to_user_id)
            await self.store.set_role(change.session, team_id, to_user_id, "owner")
            await self.store.set_role(change.session, team_id, from_user_id, "manager")
            for user_id, old, new in ((to_user_id, to_role, "owner"), (from_user_id, from_role, "manager")):
                details = {"from_role": old, "to_role": new, "reason": "ownership_transferred"}
                change.events.append(
                    self.audit.build(
                        "member.role_changed", context, team_id=team_id, target=("user", user_id), details=details
                    )
                )
        return change.current

    async def set_role_permissions(
        self, context: common_pb2.RequestContext | None, team_id: str, role: str, permissions: Sequence[str]
    ) -> tuple[list[str], int]:
        require_key(team_id, "/team_id")
        wanted = role_rules.validate_role_permissions(role, permissions)
        async with self._team_change(team_id) as change:
            state = change.state
            actor = self._actor_role(state, context, "", required=False)
            if actor is not None and "roles.manage" not in permissions_of(actor, state.roles):
                raise forbidden(f"role {actor} lacks roles.manage")
            before = state.roles[role]
            await self.store.replace_role_permissions(change.session, team_id, role, wanted, self.clock.now())
            change.events.append(
                self.audit.build(
                    "roles.updated",
                    context,
                    team_id=team_id,
                    target=("role", role),
                    details={
                        "role": role,
                        "permissions": ordered(wanted),
                        "added": ordered(wanted - before),
                        "removed": ordered(before - wanted),
                    },
                )
            )
        return ordered(wanted), change.current

    async def assign_customer(
        self, context: common_pb2.RequestContext | None, team_id: str, customer_id: str, user_id: str
    ) -> int:
        return await self._set_assignment(context, team_id, customer_id, user_id, assigned=True)

    async def unassign_customer(
        self, context: common_pb2.RequestContext | None, team_id: str, customer_id: str, user_id: str
    ) -> int:
        return await self._set_assignment(context, team_id, customer_id, user_id, assigned=False)

    async def _set_assignment(
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
        async with self._team_change(team_id) as change:
            state = change.state
            actor = self._actor_role(state, context, "", required=False)
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
                self.audit.build(
                    "customer.assigned" if assigned else "customer.unassigned",
                    context,
                    team_id=team_id,
                    target=("customer", customer_id),
                    details={"user_id": user_id},
                )
            )
        return change.current


__all__ = ["CheckQuery", "DomainError", "MembershipView", "Rbac"]
