"""The permission catalogue and the default role table (docs/api.md, "Roles, permissions, assignments")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from deelrx_kit.errors import validation_error

OWNER = "owner"
MANAGER = "manager"
STAFF = "staff"
ROLES: tuple[str, ...] = (OWNER, MANAGER, STAFF)
# Roles whose permission set an owner may change; the owner role always holds everything.
CONFIGURABLE_ROLES: tuple[str, ...] = (MANAGER, STAFF)

# Catalogue order is the order answers list permissions in.
PERMISSIONS: tuple[str, ...] = (
    "team.manage",
    "members.read",
    "members.invite",
    "members.manage",
    "sessions.manage",
    "security.manage",
    "billing.read",
    "billing.manage",
    "roles.manage",
    "team.delete",
    "customers.read",
    "customers.write",
    "customers.assign",
    "orders.read",
    "orders.write",
    "customers.read_assigned",
    "customers.write_assigned",
    "reports.read",
    "reports.write",
    "analytics.read",
    "audit.read",
)
_ORDER = {name: i for i, name in enumerate(PERMISSIONS)}

OWNER_ONLY: frozenset[str] = frozenset({"billing.manage", "roles.manage", "team.delete"})

# What an owner may give to manager and staff.
CONFIGURABLE: tuple[str, ...] = tuple(p for p in PERMISSIONS if p not in OWNER_ONLY)

# Permissions limited to the customers a member is assigned to, and the permission that
# covers every customer of the team instead.
ASSIGNED_SCOPE: Mapping[str, str] = {
    "customers.read_assigned": "customers.read",
    "customers.write_assigned": "customers.write",
}
ASSIGNED_RESOURCE_TYPE = "customer"

_MANAGER_DEFAULT = frozenset(
    {
        "team.manage",
        "members.read",
        "members.invite",
        "members.manage",
        "sessions.manage",
        "security.manage",
        "customers.read",
        "customers.write",
        "customers.assign",
        "orders.read",
        "orders.write",
        "customers.read_assigned",
        "customers.write_assigned",
        "reports.read",
        "reports.write",
        "analytics.read",
        "audit.read",
    }
)
_STAFF_DEFAULT = frozenset({"customers.read_assigned", "customers.write_assigned", "reports.read"})

DEFAULT_ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    OWNER: frozenset(PERMISSIONS),
    MANAGER: _MANAGER_DEFAULT,
    STAFF: _STAFF_DEFAULT,
}


def ordered(permissions: Iterable[str]) -> list[str]:
    """Permissions in catalogue order, without repeats."""
    return sorted(set(permissions), key=lambda p: _ORDER[p])


def require_permission(permission: str, pointer: str = "/permission") -> str:
    if permission not in _ORDER:
        raise validation_error(pointer, f"unknown permission {permission[:64]!r}")
    return permission


def require_role(role: str, pointer: str = "/role") -> str:
    if role not in ROLES:
        raise validation_error(pointer, "role must be one of owner, manager, staff")
    return role


def effective_roles(overrides: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """The team's role table: defaults, replaced per role where the owner changed it.

    The owner role is not configurable, so an override for it (there should be none) is ignored.
    """
    table = dict(DEFAULT_ROLE_PERMISSIONS)
    for role in CONFIGURABLE_ROLES:
        if role in overrides:
            table[role] = frozenset(overrides[role])
    return table
