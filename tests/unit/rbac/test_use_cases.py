"""rbac's use cases over in-memory fakes of its ports: Check with roles and assignments,
membership changes under the last-owner rule, role permission edits. No servers."""

from __future__ import annotations

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.rbac.checks import CheckQuery
from tests.unit.rbac.fakes import World, world

TEAM = "tm_a"


def ctx(user_id: str = "") -> common_pb2.RequestContext:
    return common_pb2.RequestContext(request_id="req_1", user_id=user_id)


async def team(w: World, **members: str) -> None:
    for n, (user, role) in enumerate(members.items()):
        await w.memberships.add(None, TEAM, user, role, f"inv_{user}_{n}")


async def allowed(w: World, user: str, permission: str, resource: str = "", min_revision: int = 0) -> bool:
    decision, _ = await w.checks.check(CheckQuery(user, TEAM, permission, resource, min_revision))
    return decision.allowed


async def fails(code: str, call: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code == code
    return caught.value


# -- checks -------------------------------------------------------------------------------
async def test_check_follows_the_role_table() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_mgr="manager", usr_staff="staff")
    assert await allowed(w, "usr_owner", "billing.manage")
    assert not await allowed(w, "usr_mgr", "billing.manage")
    assert await allowed(w, "usr_mgr", "members.manage")
    assert not await allowed(w, "usr_staff", "members.manage")
    decision, revision = await w.checks.check(CheckQuery("usr_stranger", TEAM, "members.read"))
    assert not decision.allowed and decision.reason == "not a member"
    assert revision == 3


async def test_assigned_permissions_reach_only_assigned_customers() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_staff="staff")
    await w.assignments.assign(ctx("usr_owner"), TEAM, "cus_1", "usr_staff")
    assert await allowed(w, "usr_staff", "customers.read_assigned", "customer:cus_1")
    assert not await allowed(w, "usr_staff", "customers.read_assigned", "customer:cus_2")
    assert not await allowed(w, "usr_staff", "customers.read", "customer:cus_1")
    found, _, _ = await w.checks.lookup_resources("usr_staff", TEAM, "customers.read_assigned", "customer")
    assert found.resource_ids == ("cus_1",) and not found.all
    await w.assignments.unassign(ctx("usr_owner"), TEAM, "cus_1", "usr_staff")
    assert not await allowed(w, "usr_staff", "customers.read_assigned", "customer:cus_1")


async def test_checks_read_memory_not_the_store() -> None:
    w = world()
    await team(w, usr_owner="owner")
    reads = w.transactions.reads
    for _ in range(5):
        assert await allowed(w, "usr_owner", "team.manage")
    assert w.transactions.reads == reads


async def test_a_change_is_visible_to_the_next_check_at_its_revision() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_staff="staff")
    assert not await allowed(w, "usr_staff", "reports.write")
    _, revision = await w.roles.set_permissions(ctx("usr_owner"), TEAM, "staff", ["reports.read", "reports.write"])
    assert await allowed(w, "usr_staff", "reports.write", min_revision=revision)
    assert w.announcer.announced[-1] == (TEAM, revision, "")
    assert w.outbox.notices()[-1].revision == revision


async def test_can_grant_role_needs_every_permission_of_the_role() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_mgr="manager", usr_staff="staff")
    assert (await w.checks.can_grant_role("usr_mgr", TEAM, "staff"))[0].allowed
    assert not (await w.checks.can_grant_role("usr_mgr", TEAM, "owner"))[0].allowed
    assert not (await w.checks.can_grant_role("usr_staff", TEAM, "manager"))[0].allowed
    assert (await w.checks.can_grant_role("usr_owner", TEAM, "owner"))[0].allowed


async def test_batch_check_is_capped() -> None:
    w = world()
    await team(w, usr_owner="owner")
    await fails("validation_error", w.checks.batch_check([CheckQuery("usr_owner", TEAM, "team.manage")] * 101))


# -- memberships --------------------------------------------------------------------------
async def test_adding_a_member_is_idempotent_by_operation_id() -> None:
    w = world()
    first, created, revision = await w.memberships.add(None, TEAM, "usr_owner", "owner", "inv_1")
    again, created_again, revision_again = await w.memberships.add(None, TEAM, "usr_owner", "owner", "inv_1")
    assert created and not created_again
    assert first.binding == again.binding and revision == revision_again == 1
    assert len(w.outbox.events("member.joined")) == 1
    await fails("conflict", w.memberships.add(None, TEAM, "usr_other", "staff", "inv_1"))
    await fails("conflict", w.memberships.add(None, TEAM, "usr_owner", "owner", "inv_2"))


async def test_the_last_owner_can_neither_leave_nor_be_demoted() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_mgr="manager")
    error = await fails("conflict", w.memberships.remove(None, TEAM, "usr_owner"))
    assert "owner" in error.message
    await fails("conflict", w.memberships.change_role(ctx("usr_owner"), TEAM, "usr_owner", "manager"))
    # Nothing was written: the revision and the role are unchanged.
    assert w.store.revisions[TEAM] == 2
    assert (await w.memberships.get("usr_owner", TEAM))[0].binding.role == "owner"


async def test_with_a_second_owner_the_first_may_step_down() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_two="owner")
    view, revision = await w.memberships.change_role(ctx("usr_owner"), TEAM, "usr_owner", "manager")
    assert view.binding.role == "manager" and revision == 3
    await fails("conflict", w.memberships.remove(ctx("usr_two"), TEAM, "usr_two"))


async def test_only_owners_touch_owners_and_managers_need_members_manage() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_mgr="manager", usr_staff="staff")
    await fails("forbidden", w.memberships.remove(ctx("usr_mgr"), TEAM, "usr_owner"))
    await fails("forbidden", w.memberships.change_role(ctx("usr_mgr"), TEAM, "usr_staff", "owner"))
    await fails("forbidden", w.memberships.remove(ctx("usr_staff"), TEAM, "usr_mgr"))
    await fails("forbidden", w.memberships.remove(ctx("usr_stranger"), TEAM, "usr_staff"))
    await w.memberships.remove(ctx("usr_mgr"), TEAM, "usr_staff")
    assert not await allowed(w, "usr_staff", "reports.read")


async def test_removal_drops_the_members_assignments() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_staff="staff")
    await w.assignments.assign(None, TEAM, "cus_1", "usr_staff")
    await w.memberships.remove(None, TEAM, "usr_staff")
    removed = w.outbox.events("member.removed")[-1]
    assert removed.details["unassigned_customers"] == 1
    assert not w.store.assignments


async def test_transfer_ownership_swaps_owner_and_manager() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_mgr="manager")
    await fails("forbidden", w.memberships.transfer_ownership(ctx("usr_mgr"), TEAM, "usr_owner", "usr_mgr"))
    await w.memberships.transfer_ownership(ctx("usr_owner"), TEAM, "usr_owner", "usr_mgr")
    roles = {v.binding.user_id: v.binding.role for v in await w.memberships.of_team(TEAM)}
    assert roles == {"usr_owner": "manager", "usr_mgr": "owner"}


async def test_memberships_of_a_user_use_each_teams_role_table() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_staff="staff")
    await w.memberships.add(None, "tm_b", "usr_staff", "staff", "inv_b")
    await w.roles.set_permissions(None, TEAM, "staff", ["reports.read", "analytics.read"])
    views = {v.binding.team_id: v.permissions for v in await w.memberships.of_user("usr_staff")}
    assert "analytics.read" in views[TEAM] and "analytics.read" not in views["tm_b"]
    await fails("not_found", w.memberships.get("usr_nobody", TEAM))


# -- roles --------------------------------------------------------------------------------
async def test_role_permission_edits_are_checked_and_recorded() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_mgr="manager")
    permissions, _ = await w.roles.set_permissions(ctx("usr_owner"), TEAM, "staff", ["reports.write", "reports.read"])
    assert permissions == ["reports.read", "reports.write"]
    event = w.outbox.events("roles.updated")[-1]
    assert list(event.details["added"]) == ["reports.write"]
    assert list(event.details["removed"]) == ["customers.read_assigned", "customers.write_assigned"]
    table, configurable = await w.roles.table(TEAM)
    assert table["staff"] == ["reports.read", "reports.write"] and "billing.manage" not in configurable
    await fails("forbidden", w.roles.set_permissions(ctx("usr_mgr"), TEAM, "staff", []))  # lacks roles.manage
    await fails("forbidden", w.roles.set_permissions(ctx("usr_owner"), TEAM, "manager", ["billing.manage"]))
    await fails("validation_error", w.roles.set_permissions(ctx("usr_owner"), TEAM, "owner", []))
    await fails("validation_error", w.roles.set_permissions(ctx("usr_owner"), TEAM, "staff", ["nope.nope"]))


async def test_an_owner_keeps_every_permission_whatever_the_table() -> None:
    w = world()
    await team(w, usr_owner="owner")
    await w.roles.set_permissions(None, TEAM, "manager", [])
    assert await allowed(w, "usr_owner", "members.manage")


# -- assignments --------------------------------------------------------------------------
async def test_assigning_twice_changes_nothing_and_non_members_cannot_be_assigned() -> None:
    w = world()
    await team(w, usr_owner="owner", usr_staff="staff")
    first = await w.assignments.assign(None, TEAM, "cus_1", "usr_staff")
    assert await w.assignments.assign(None, TEAM, "cus_1", "usr_staff") == first
    assert len(w.outbox.events("customer.assigned")) == 1
    await fails("not_found", w.assignments.assign(None, TEAM, "cus_1", "usr_stranger"))
    await fails("forbidden", w.assignments.assign(ctx("usr_staff"), TEAM, "cus_2", "usr_staff"))
    assert await w.assignments.of_member(TEAM, "usr_staff") == ["cus_1"]
