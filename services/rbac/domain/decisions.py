"""Answering "may this member do that?" from a team's role table and assignments."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from deelrx_kit.errors import validation_error
from services.rbac.domain.permissions import ASSIGNED_RESOURCE_TYPE, ASSIGNED_SCOPE, OWNER, PERMISSIONS
from services.rbac.domain.resources import Resource, require_resource_type

NOT_A_MEMBER = "not a member"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class ResourceLookup:
    all: bool
    resource_ids: tuple[str, ...] = ()


def permissions_of(role: str, role_permissions: Mapping[str, Set[str]]) -> frozenset[str]:
    # The owner holds every permission whatever a stored table says: a team can never lock
    # its owner out.
    if role == OWNER:
        return frozenset(PERMISSIONS)
    return frozenset(role_permissions.get(role, frozenset()))


def decide(
    role: str | None,
    role_permissions: Mapping[str, Set[str]],
    permission: str,
    resource: Resource | None,
    assignments: Set[str],
) -> Decision:
    """`role` is None for a non-member; `assignments` are the customer ids the member is assigned to.

    The caller validates `permission` against the catalogue first (`require_permission`).
    `customers.*_assigned` on `customer:X` needs an assignment to X unless the role holds the
    matching team-wide permission (`customers.read`/`customers.write`), which covers every customer.
    """
    if role is None:
        return Decision(False, NOT_A_MEMBER)
    held = permissions_of(role, role_permissions)
    broad = ASSIGNED_SCOPE.get(permission)
    if broad is None:
        if permission in held:
            return Decision(True, f"role {role} grants {permission}")
        return Decision(False, f"role {role} lacks {permission}")

    if resource is not None and resource.type != ASSIGNED_RESOURCE_TYPE:
        raise validation_error("/resource", f"{permission} applies to {ASSIGNED_RESOURCE_TYPE} resources")
    if broad in held:
        return Decision(True, f"role {role} grants {broad}")
    if permission not in held:
        return Decision(False, f"role {role} lacks {permission}")
    if resource is None:
        # Asked without a customer: "may this member work on the customers assigned to him?"
        return Decision(True, f"role {role} grants {permission}")
    if resource.id in assignments:
        return Decision(True, f"role {role} grants {permission}; assigned to {resource}")
    return Decision(False, f"not assigned to {resource}")


def lookup_resources(
    role: str | None,
    role_permissions: Mapping[str, Set[str]],
    permission: str,
    resource_type: str,
    assignments: Set[str],
) -> ResourceLookup:
    """Which resources of a type `decide` would allow: all of them, or exactly these ids."""
    require_resource_type(resource_type)
    if role is None:
        return ResourceLookup(False)
    held = permissions_of(role, role_permissions)
    broad = ASSIGNED_SCOPE.get(permission)
    if broad is None:
        return ResourceLookup(permission in held)
    if resource_type != ASSIGNED_RESOURCE_TYPE:
        raise validation_error("/resource_type", f"{permission} applies to {ASSIGNED_RESOURCE_TYPE} resources")
    if broad in held:
        return ResourceLookup(True)
    if permission in held:
        return ResourceLookup(False, tuple(sorted(assignments)))
    return ResourceLookup(False)
