"""The default decision table of docs/api.md, cell by cell, and the assigned-customer rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deelrx_kit.errors import DomainError
from services.rbac.domain.decisions import decide, lookup_resources
from services.rbac.domain.permissions import (
    CONFIGURABLE,
    DEFAULT_ROLE_PERMISSIONS,
    OWNER_ONLY,
    PERMISSIONS,
    effective_roles,
)
from services.rbac.domain.resources import Resource, parse_resource
from services.rbac.domain.team import RoleBinding, TeamAuthorization

# Copied by hand from docs/api.md ("Default permissions"): owner, manager, staff.
API_TABLE: dict[str, tuple[bool, bool, bool]] = {}
for names, cells in [
    ("team.manage members.read members.invite members.manage sessions.manage security.manage", (True, True, False)),
    ("billing.read", (True, False, False)),
    ("billing.manage roles.manage team.delete", (True, False, False)),
    ("customers.read customers.write customers.assign orders.read orders.write", (True, True, False)),
    ("customers.read_assigned customers.write_assigned", (True, True, True)),
    ("reports.read", (True, True, True)),
    ("reports.write analytics.read audit.read", (True, True, False)),
]:
    for name in names.split():
        API_TABLE[name] = cells

CELLS = [
    (permission, role, cells[i])
    for permission, cells in API_TABLE.items()
    for i, role in enumerate(("owner", "manager", "staff"))
]


def test_catalogue_is_exactly_the_api_table() -> None:
    assert set(PERMISSIONS) == set(API_TABLE)
    assert len(PERMISSIONS) == len(API_TABLE)


@pytest.mark.parametrize(("permission", "role", "expected"), CELLS)
def test_default_cell(permission: str, role: str, expected: bool) -> None:
    # Without a resource: "does the role hold the permission at all?"
    decision = decide(role, DEFAULT_ROLE_PERMISSIONS, permission, None, frozenset())
    assert decision.allowed is expected
    assert role in decision.reason


@pytest.mark.parametrize("role", ["owner", "manager", "staff"])
def test_team_view_agrees_with_table(role: str) -> None:
    team = TeamAuthorization("tm_1", 3, members={"usr_a": _binding(role)})
    for permission, cells in API_TABLE.items():
        expected = cells[("owner", "manager", "staff").index(role)]
        assert team.check("usr_a", permission, "").allowed is expected, permission


def _binding(role: str) -> RoleBinding:
    return RoleBinding("tm_1", "usr_a", role, datetime(2026, 1, 1, tzinfo=UTC))


def test_owner_only_and_configurable() -> None:
    assert {"billing.manage", "roles.manage", "team.delete"} == OWNER_ONLY
    assert set(CONFIGURABLE) == set(PERMISSIONS) - OWNER_ONLY
    assert "billing.read" in CONFIGURABLE


def test_owner_keeps_everything_whatever_the_table_says() -> None:
    broken = {"owner": frozenset[str](), "manager": frozenset[str](), "staff": frozenset[str]()}
    for permission in PERMISSIONS:
        assert decide("owner", broken, permission, None, frozenset()).allowed


def test_non_member_is_refused() -> None:
    decision = decide(None, DEFAULT_ROLE_PERMISSIONS, "reports.read", None, frozenset())
    assert (decision.allowed, decision.reason) == (False, "not a member")


@pytest.mark.parametrize("permission", ["customers.read_assigned", "customers.write_assigned"])
def test_staff_assigned_customer_rule(permission: str) -> None:
    c42 = Resource("customer", "c_42")
    c43 = Resource("customer", "c_43")
    assigned = frozenset({"c_42"})
    assert decide("staff", DEFAULT_ROLE_PERMISSIONS, permission, c42, assigned).allowed
    refused = decide("staff", DEFAULT_ROLE_PERMISSIONS, permission, c43, assigned)
    assert not refused.allowed
    assert "not assigned" in refused.reason


@pytest.mark.parametrize("permission", ["customers.read", "customers.write"])
def test_team_wide_customer_permission_needs_no_assignment(permission: str) -> None:
    c = Resource("customer", "c_99")
    assert decide("manager", DEFAULT_ROLE_PERMISSIONS, permission, c, frozenset()).allowed
    # Staff is assigned to c_99 but lacks the team-wide permission.
    assert not decide("staff", DEFAULT_ROLE_PERMISSIONS, permission, c, frozenset({"c_99"})).allowed


def test_team_wide_permission_covers_assigned_checks() -> None:
    c = Resource("customer", "c_7")
    decision = decide("manager", DEFAULT_ROLE_PERMISSIONS, "customers.read_assigned", c, frozenset())
    assert decision.allowed
    assert "customers.read" in decision.reason


def test_assigned_permission_removed_by_owner_refuses_even_assigned() -> None:
    roles = effective_roles({"staff": frozenset({"reports.read"})})
    c = Resource("customer", "c_1")
    assert not decide("staff", roles, "customers.read_assigned", c, frozenset({"c_1"})).allowed


def test_assigned_permission_on_other_resource_type_is_invalid() -> None:
    with pytest.raises(DomainError) as err:
        decide("staff", DEFAULT_ROLE_PERMISSIONS, "customers.read_assigned", Resource("order", "o1"), frozenset())
    assert err.value.code == "validation_error"


@pytest.mark.parametrize(
    "bad", ["customer", "customer:", ":c1", "Customer:c1", "customer:c 1", "a:b:c\n", "x" * 40 + ":1"]
)
def test_malformed_resources_are_validation_errors(bad: str) -> None:
    with pytest.raises(DomainError) as err:
        parse_resource(bad)
    assert err.value.code == "validation_error"


def test_resource_parsing() -> None:
    assert parse_resource("customer:c_42") == Resource("customer", "c_42")
    assert parse_resource("") is None


def test_unknown_permission_is_validation_error() -> None:
    team = TeamAuthorization("tm_1", 1, members={"usr_a": _binding("owner")})
    with pytest.raises(DomainError) as err:
        team.check("usr_a", "customers.delete", "")
    assert err.value.code == "validation_error"


def test_lookup_matches_decide() -> None:
    assigned = frozenset({"c_2", "c_1"})
    staff = lookup_resources("staff", DEFAULT_ROLE_PERMISSIONS, "customers.read_assigned", "customer", assigned)
    assert (staff.all, staff.resource_ids) == (False, ("c_1", "c_2"))
    manager = lookup_resources("manager", DEFAULT_ROLE_PERMISSIONS, "customers.read_assigned", "customer", assigned)
    assert manager.all
    assert not lookup_resources("staff", DEFAULT_ROLE_PERMISSIONS, "customers.read", "customer", assigned).all
    assert (
        lookup_resources("staff", DEFAULT_ROLE_PERMISSIONS, "customers.read", "customer", assigned).resource_ids == ()
    )
    assert lookup_resources(None, DEFAULT_ROLE_PERMISSIONS, "reports.read", "report", assigned) == lookup_resources(
        "staff", {}, "reports.read", "report", assigned
    )
