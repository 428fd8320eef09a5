"""A team's whole authorization state at one revision: what every decision reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from services.rbac.domain.decisions import Decision, ResourceLookup, decide, lookup_resources
from services.rbac.domain.permissions import OWNER, effective_roles, require_permission
from services.rbac.domain.resources import parse_resource


@dataclass(frozen=True)
class RoleBinding:
    """A user's membership of a team with one role."""

    team_id: str
    user_id: str
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class AppliedOperation:
    """What an AddMember operation applied, kept after the member leaves (idempotency)."""

    operation_id: str
    team_id: str
    user_id: str
    role: str
    applied_at: datetime


@dataclass(frozen=True)
class TeamAuthorization:
    team_id: str
    revision: int
    members: Mapping[str, RoleBinding] = field(default_factory=dict)
    # Stored overrides only; `roles` merges them with the defaults.
    overrides: Mapping[str, frozenset[str]] = field(default_factory=dict)
    assignments: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @cached_property
    def roles(self) -> dict[str, frozenset[str]]:
        return effective_roles(self.overrides)

    def role_of(self, user_id: str) -> str | None:
        binding = self.members.get(user_id)
        return binding.role if binding else None

    def owner_count(self) -> int:
        return sum(1 for b in self.members.values() if b.role == OWNER)

    def check(self, user_id: str, permission: str, resource: str) -> Decision:
        require_permission(permission)
        parsed = parse_resource(resource)
        return decide(self.role_of(user_id), self.roles, permission, parsed, self.assignments.get(user_id, frozenset()))

    def lookup(self, user_id: str, permission: str, resource_type: str) -> ResourceLookup:
        require_permission(permission)
        return lookup_resources(
            self.role_of(user_id), self.roles, permission, resource_type, self.assignments.get(user_id, frozenset())
        )
