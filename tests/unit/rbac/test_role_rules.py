"""Owner rules, the invitation rule and role-table validation."""

from __future__ import annotations

import pytest

from deelrx_kit.errors import DomainError
from services.rbac.domain.permissions import DEFAULT_ROLE_PERMISSIONS, effective_roles
from services.rbac.domain.role_rules import (
    can_grant,
    check_removal,
    check_role_change,
    check_transfer,
    validate_role_permissions,
)

ROLES = DEFAULT_ROLE_PERMISSIONS


def _code(fn, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as err:
        fn(*args)
    return err.value.code


@pytest.mark.parametrize(
    ("actor", "current", "new", "owners", "code"),
    [
        ("manager", "staff", "owner", 1, "forbidden"),  # only an owner grants owner
        ("manager", "owner", "staff", 2, "forbidden"),  # only an owner takes owner
        ("staff", "staff", "manager", 1, "forbidden"),  # staff lacks members.manage
        ("owner", "owner", "manager", 1, "conflict"),  # last owner cannot be demoted
        (None, "owner", "staff", 1, "conflict"),  # not even by an internal caller
    ],
)
def test_refused_role_changes(actor: str | None, current: str, new: str, owners: int, code: str) -> None:
    assert _code(check_role_change, actor, ROLES, current, new, owners) == code


@pytest.mark.parametrize(
    ("actor", "current", "new", "owners"),
    [
        ("owner", "staff", "owner", 1),
        ("owner", "owner", "manager", 2),
        ("manager", "staff", "manager", 1),
        ("manager", "manager", "staff", 1),
    ],
)
def test_allowed_role_changes(actor: str, current: str, new: str, owners: int) -> None:
    check_role_change(actor, ROLES, current, new, owners)


def test_manager_cannot_grant_a_role_holding_permissions_he_lacks() -> None:
    # The owner gave staff billing.read, which managers do not hold.
    roles = effective_roles({"staff": frozenset({"reports.read", "billing.read"})})
    decision = can_grant("manager", roles, "staff")
    assert not decision.allowed
    assert "billing.read" in decision.reason
    assert _code(check_role_change, "manager", roles, "manager", "staff", 1) == "forbidden"
    assert can_grant("owner", roles, "staff").allowed


def test_invite_rule() -> None:
    assert can_grant("manager", ROLES, "staff").allowed
    assert can_grant("manager", ROLES, "manager").allowed
    assert not can_grant("manager", ROLES, "owner").allowed
    assert not can_grant("staff", ROLES, "manager").allowed
    assert can_grant("owner", ROLES, "owner").allowed
    assert _code(can_grant, "owner", ROLES, "admin") == "validation_error"


def test_removal_rules() -> None:
    assert _code(check_removal, "owner", ROLES, "owner", 1) == "conflict"
    assert _code(check_removal, "manager", ROLES, "owner", 2) == "forbidden"
    assert _code(check_removal, "staff", ROLES, "staff", 1) == "forbidden"
    check_removal("owner", ROLES, "owner", 2)
    check_removal("manager", ROLES, "staff", 1)


def test_transfer_rules() -> None:
    assert _code(check_transfer, "manager", "staff", False) == "forbidden"
    assert _code(check_transfer, "owner", None, False) == "validation_error"
    assert _code(check_transfer, "owner", "owner", True) == "validation_error"
    check_transfer("owner", "staff", False)


def test_role_table_validation() -> None:
    assert validate_role_permissions("staff", ["reports.read", "billing.read"]) == {"reports.read", "billing.read"}
    assert validate_role_permissions("manager", []) == frozenset()
    assert _code(validate_role_permissions, "staff", ["billing.manage"]) == "forbidden"
    assert _code(validate_role_permissions, "manager", ["roles.manage", "reports.read"]) == "forbidden"
    assert _code(validate_role_permissions, "staff", ["nope.nope"]) == "validation_error"
    assert _code(validate_role_permissions, "owner", ["reports.read"]) == "validation_error"
