"""Who may hand out, change and take away roles, and how a team keeps an owner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from deelrx_kit.errors import DomainError, forbidden, validation_error
from services.rbac.domain.decisions import Decision, permissions_of
from services.rbac.domain.permissions import (
    CONFIGURABLE_ROLES,
    OWNER,
    OWNER_ONLY,
    ordered,
    require_permission,
    require_role,
)

LAST_OWNER = "the team must keep at least one owner"


def can_grant(actor_role: str, role_permissions: Mapping[str, Set[str]], role: str) -> Decision:
    """The invitation rule, also used for role changes: handing out `role` needs every
    permission of that role, and `owner` needs an owner."""
    require_role(role)
    if role == OWNER:
        if actor_role == OWNER:
            return Decision(True, "an owner may grant owner")
        return Decision(False, "only an owner may grant owner")
    missing = permissions_of(role, role_permissions) - permissions_of(actor_role, role_permissions)
    if missing:
        return Decision(False, f"role {actor_role} lacks {', '.join(ordered(missing))} of role {role}")
    return Decision(True, f"role {actor_role} holds every permission of role {role}")


def check_role_change(
    actor_role: str | None,
    role_permissions: Mapping[str, Set[str]],
    current_role: str,
    new_role: str,
    owner_count: int,
) -> None:
    """Raises when the change is not allowed. `actor_role` None is a trusted internal caller."""
    require_role(new_role)
    if actor_role is not None:
        if "members.manage" not in permissions_of(actor_role, role_permissions):
            raise forbidden(f"role {actor_role} lacks members.manage")
        if OWNER in (current_role, new_role) and actor_role != OWNER:
            raise forbidden("only an owner may grant or take the owner role")
        granted = can_grant(actor_role, role_permissions, new_role)
        if not granted.allowed:
            raise forbidden(granted.reason)
    if current_role == OWNER and new_role != OWNER and owner_count <= 1:
        raise DomainError("conflict", LAST_OWNER)


def check_removal(
    actor_role: str | None,
    role_permissions: Mapping[str, Set[str]],
    target_role: str,
    owner_count: int,
) -> None:
    if actor_role is not None:
        if "members.manage" not in permissions_of(actor_role, role_permissions):
            raise forbidden(f"role {actor_role} lacks members.manage")
        if target_role == OWNER and actor_role != OWNER:
            raise forbidden("only an owner may remove an owner")
    if target_role == OWNER and owner_count <= 1:
        raise DomainError("conflict", LAST_OWNER)


def check_transfer(from_role: str | None, to_role: str | None, same_user: bool) -> None:
    if same_user:
        raise validation_error("/user_id", "ownership must go to another member")
    if from_role != OWNER:
        raise forbidden("only an owner may transfer ownership")
    if to_role is None:
        raise validation_error("/user_id", "the new owner must be a member of the team")


def validate_role_permissions(role: str, permissions: Iterable[str]) -> frozenset[str]:
    """What an owner asked a configurable role to hold, checked against the catalogue."""
    if role not in CONFIGURABLE_ROLES:
        raise validation_error("/role", "only the manager and staff roles are configurable")
    wanted = frozenset(require_permission(p, "/permissions") for p in permissions)
    owner_only = wanted & OWNER_ONLY
    if owner_only:
        raise forbidden(f"owner-only permissions cannot be given: {', '.join(ordered(owner_only))}")
    return wanted
