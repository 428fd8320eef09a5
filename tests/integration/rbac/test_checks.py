"""Check, BatchCheck, LookupResources, role tables and assignments; caches across replicas."""

from __future__ import annotations

import asyncio
from pathlib import Path

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.ids import new_id
from deelrx_kit.nats_bus import RBAC_CHANGED_PREFIX
from tests.integration.harness import domain_error, eventually, make_settings

from .conftest import Running, ctx, new_team, start


def _check(user: str, team: str, permission: str, resource: str = "", min_revision: int = 0) -> rbac_pb2.CheckRequest:
    return rbac_pb2.CheckRequest(
        user_id=user, team_id=team, permission=permission, resource=resource, min_revision=min_revision
    )


async def test_set_role_permissions_changes_checks_at_once(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner", clerk="staff")
    before = await rbac.stub.Check(_check(u["clerk"], team_id, "reports.write"))
    assert not before.allowed

    update = rbac_pb2.SetRolePermissionsRequest(
        context=ctx(u["owner"]), team_id=team_id, role="staff", permissions=["reports.write", "reports.read"]
    )
    answer = await rbac.stub.SetRolePermissions(update)
    assert list(answer.role.permissions) == ["reports.read", "reports.write"]

    after = await rbac.stub.Check(_check(u["clerk"], team_id, "reports.write"))
    assert after.allowed and after.revision == before.revision + 1
    assigned = await rbac.stub.Check(_check(u["clerk"], team_id, "customers.read_assigned"))
    assert not assigned.allowed  # the stored set replaced the default one entirely

    roles = await rbac.stub.GetRoles(rbac_pb2.GetRolesRequest(team_id=team_id))
    table = {r.role: list(r.permissions) for r in roles.roles}
    assert table["staff"] == ["reports.read", "reports.write"]
    assert "billing.manage" in table["owner"] and "billing.manage" not in roles.configurable
    assert "billing.read" in roles.configurable and "billing.read" not in table["manager"]

    owner_only = rbac_pb2.SetRolePermissionsRequest(
        context=ctx(u["owner"]), team_id=team_id, role="manager", permissions=["billing.manage"]
    )
    assert (await domain_error(rbac.stub.SetRolePermissions(owner_only))).code == "forbidden"
    unknown = rbac_pb2.SetRolePermissionsRequest(
        context=ctx(u["owner"]), team_id=team_id, role="staff", permissions=["reports.delete"]
    )
    assert (await domain_error(rbac.stub.SetRolePermissions(unknown))).code == "validation_error"
    owner_role = rbac_pb2.SetRolePermissionsRequest(context=ctx(u["owner"]), team_id=team_id, role="owner")
    assert (await domain_error(rbac.stub.SetRolePermissions(owner_role))).code == "validation_error"
    by_staff = rbac_pb2.SetRolePermissionsRequest(
        context=ctx(u["clerk"]), team_id=team_id, role="staff", permissions=["audit.read"]
    )
    assert (await domain_error(rbac.stub.SetRolePermissions(by_staff))).code == "forbidden"
    # Refused changes did not move the revision.
    assert (await rbac.stub.Check(_check(u["clerk"], team_id, "reports.write"))).revision == after.revision

    # An empty set is a real choice, not "back to defaults".
    await rbac.stub.SetRolePermissions(
        rbac_pb2.SetRolePermissionsRequest(context=ctx(u["owner"]), team_id=team_id, role="staff")
    )
    assert not (await rbac.stub.Check(_check(u["clerk"], team_id, "reports.read"))).allowed
    member = await rbac.stub.GetMembership(rbac_pb2.GetMembershipRequest(user_id=u["clerk"], team_id=team_id))
    assert list(member.membership.permissions) == []


async def test_members_of_one_team_get_nothing_in_another(rbac: Running) -> None:
    team_a, a = await new_team(rbac.stub, owner="owner")
    team_b, _ = await new_team(rbac.stub, owner="owner")
    answer = await rbac.stub.Check(_check(a["owner"], team_b, "members.read"))
    assert (answer.allowed, answer.reason) == (False, "not a member")
    assert (await rbac.stub.Check(_check(a["owner"], team_a, "members.read"))).allowed
    looked = await rbac.stub.LookupResources(
        rbac_pb2.LookupResourcesRequest(
            user_id=a["owner"], team_id=team_b, permission="customers.read", resource_type="customer"
        )
    )
    assert not looked.all and list(looked.resource_ids) == []
    missing = await domain_error(
        rbac.stub.GetMembership(rbac_pb2.GetMembershipRequest(user_id=a["owner"], team_id=team_b))
    )
    assert missing.code == "not_found"
    # An owner of A cannot act in B either.
    change = rbac_pb2.SetRolePermissionsRequest(context=ctx(a["owner"]), team_id=team_b, role="staff")
    assert (await domain_error(rbac.stub.SetRolePermissions(change))).code == "forbidden"


async def test_customer_assignments(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner", boss="manager", clerk="staff")
    assign = rbac_pb2.AssignCustomerRequest(
        context=ctx(u["boss"]), team_id=team_id, customer_id="c_1", user_id=u["clerk"]
    )
    await rbac.stub.AssignCustomer(assign)
    revision = (await rbac.stub.Check(_check(u["clerk"], team_id, "reports.read"))).revision
    await rbac.stub.AssignCustomer(assign)  # idempotent: no change, no new revision

    batch = await rbac.stub.BatchCheck(
        rbac_pb2.BatchCheckRequest(
            checks=[
                _check(u["clerk"], team_id, "customers.read_assigned", "customer:c_1"),
                _check(u["clerk"], team_id, "customers.write_assigned", "customer:c_2"),
                _check(u["clerk"], team_id, "customers.read", "customer:c_1"),
                _check(u["boss"], team_id, "customers.read", "customer:c_2"),
            ]
        )
    )
    assert [r.allowed for r in batch.results] == [True, False, False, True]
    assert {r.revision for r in batch.results} == {revision}

    looked = await rbac.stub.LookupResources(
        rbac_pb2.LookupResourcesRequest(
            user_id=u["clerk"], team_id=team_id, permission="customers.read_assigned", resource_type="customer"
        )
    )
    assert (looked.all, list(looked.resource_ids)) == (False, ["c_1"])
    listed = await rbac.stub.ListAssignedCustomers(
        rbac_pb2.ListAssignedCustomersRequest(team_id=team_id, user_id=u["clerk"])
    )
    assert list(listed.customer_ids) == ["c_1"]

    stranger = rbac_pb2.AssignCustomerRequest(
        context=ctx(u["boss"]), team_id=team_id, customer_id="c_1", user_id=new_id("usr")
    )
    assert (await domain_error(rbac.stub.AssignCustomer(stranger))).code == "not_found"
    by_staff = rbac_pb2.AssignCustomerRequest(
        context=ctx(u["clerk"]), team_id=team_id, customer_id="c_3", user_id=u["clerk"]
    )
    assert (await domain_error(rbac.stub.AssignCustomer(by_staff))).code == "forbidden"
    bad = await domain_error(rbac.stub.Check(_check(u["clerk"], team_id, "customers.read_assigned", "customer c_1")))
    assert bad.code == "validation_error"
    unknown = await domain_error(rbac.stub.Check(_check(u["clerk"], team_id, "customers.delete")))
    assert unknown.code == "validation_error"

    unassign = rbac_pb2.UnassignCustomerRequest(
        context=ctx(u["boss"]), team_id=team_id, customer_id="c_1", user_id=u["clerk"]
    )
    await rbac.stub.UnassignCustomer(unassign)
    await rbac.stub.UnassignCustomer(unassign)
    after = await rbac.stub.Check(_check(u["clerk"], team_id, "customers.read_assigned", "customer:c_1"))
    assert not after.allowed and after.revision == revision + 1


async def test_can_grant_role_follows_the_invitation_rule(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner", boss="manager", clerk="staff")

    async def grant(user: str, role: str) -> bool:
        req = rbac_pb2.CanGrantRoleRequest(user_id=user, team_id=team_id, role=role)
        return (await rbac.stub.CanGrantRole(req)).allowed

    assert await grant(u["boss"], "staff") and await grant(u["boss"], "manager")
    assert not await grant(u["boss"], "owner") and await grant(u["owner"], "owner")
    await rbac.stub.SetRolePermissions(
        rbac_pb2.SetRolePermissionsRequest(
            context=ctx(u["owner"]), team_id=team_id, role="staff", permissions=["billing.read"]
        )
    )
    assert not await grant(u["boss"], "staff")
    assert not await grant(new_id("usr"), "staff")


async def test_change_events_reach_nats(rbac: Running, nats_client) -> None:  # type: ignore[no-untyped-def]
    await rbac.listening()
    team_id, u = await new_team(rbac.stub, owner="owner", clerk="staff")
    seen: asyncio.Queue[rbac_pb2.AuthorizationChanged] = asyncio.Queue()

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        await seen.put(rbac_pb2.AuthorizationChanged.FromString(msg.data))

    sub = await nats_client.subscribe(RBAC_CHANGED_PREFIX + team_id, cb=on_msg)
    await nats_client.flush()
    try:
        await rbac.stub.AssignCustomer(
            rbac_pb2.AssignCustomerRequest(
                context=ctx(u["owner"]), team_id=team_id, customer_id="c_9", user_id=u["clerk"]
            )
        )
        notices = [await asyncio.wait_for(seen.get(), timeout=10)]
        # The joins (revisions 1 and 2) may still be on their way when we subscribed.
        while notices[-1].revision < 3:
            notices.append(await asyncio.wait_for(seen.get(), timeout=10))
    finally:
        await sub.unsubscribe()
    notice = notices[-1]
    assert (notice.team_id, notice.revision, notice.user_id) == (team_id, 3, u["clerk"])


async def test_replicas_sharing_a_database_follow_each_other(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str
) -> None:
    first = await start(make_settings(tmp_path / "a", database_url, nats_url, redis_url))
    second = await start(make_settings(tmp_path / "b", database_url, nats_url, redis_url))
    try:
        await first.listening()
        await second.listening()
        team_id, u = await new_team(first.stub, owner="owner", clerk="staff")

        warm = await second.stub.Check(_check(u["clerk"], team_id, "audit.read"))
        assert not warm.allowed and warm.revision == 2

        changed = await first.stub.SetRolePermissions(
            rbac_pb2.SetRolePermissionsRequest(
                context=ctx(u["owner"]), team_id=team_id, role="staff", permissions=["audit.read"]
            )
        )
        assert list(changed.role.permissions) == ["audit.read"]
        # The caller saw revision 3: the other replica answers at least that fresh, at once.
        fresh = await second.stub.Check(_check(u["clerk"], team_id, "audit.read", min_revision=3))
        assert fresh.allowed and fresh.revision == 3

        # A membership change on the first replica reaches the second's cache through NATS.
        await first.stub.RemoveMember(
            rbac_pb2.RemoveMemberRequest(context=ctx(u["owner"]), team_id=team_id, user_id=u["clerk"])
        )
        answers: list[rbac_pb2.CheckResponse] = []

        async def refreshed() -> bool:
            answers.append(await second.stub.Check(_check(u["clerk"], team_id, "audit.read")))
            return answers[-1].revision == 4

        await eventually(refreshed, what="the second replica saw the change")
        assert (answers[-1].allowed, answers[-1].reason) == (False, "not a member")

        # Steady state: checks on either replica read memory only, no database.
        loads = (first.rt.rbac.cache.loads, second.rt.rbac.cache.loads)  # type: ignore[attr-defined]
        for replica in (first, second):
            for _ in range(20):
                answer = await replica.stub.Check(_check(u["owner"], team_id, "billing.manage"))
                assert answer.allowed and answer.revision == 4 and answer.reason == "role owner grants billing.manage"
        assert (first.rt.rbac.cache.loads, second.rt.rbac.cache.loads) == loads  # type: ignore[attr-defined]
    finally:
        await first.close()
        await second.close()


async def test_batch_check_answers_up_to_100_in_order(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner", clerk="staff")
    permissions = ["reports.read", "billing.read"] * 50
    reply = await rbac.stub.BatchCheck(
        rbac_pb2.BatchCheckRequest(checks=[_check(u["clerk"], team_id, p) for p in permissions])
    )
    assert [r.allowed for r in reply.results] == [p == "reports.read" for p in permissions]
    assert {r.revision for r in reply.results} == {2}
    too_many = rbac_pb2.BatchCheckRequest(checks=[_check(u["clerk"], team_id, "reports.read")] * 101)
    assert (await domain_error(rbac.stub.BatchCheck(too_many))).code == "validation_error"


async def test_lookup_resources_pages_the_assigned_customers(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner", clerk="staff")
    customers = sorted(f"c_{i:03d}" for i in range(7))
    for customer in customers:
        await rbac.stub.AssignCustomer(
            rbac_pb2.AssignCustomerRequest(
                context=ctx(u["owner"]), team_id=team_id, customer_id=customer, user_id=u["clerk"]
            )
        )
    seen: list[str] = []
    cursor = ""
    while True:
        page = await rbac.stub.LookupResources(
            rbac_pb2.LookupResourcesRequest(
                user_id=u["clerk"],
                team_id=team_id,
                permission="customers.read_assigned",
                resource_type="customer",
                page={"limit": 3, "cursor": cursor},
            )
        )
        assert not page.all and len(page.resource_ids) <= 3
        seen += page.resource_ids
        cursor = page.page.next_cursor
        if not cursor:
            break
    assert seen == customers
    everything = await rbac.stub.LookupResources(
        rbac_pb2.LookupResourcesRequest(
            user_id=u["owner"], team_id=team_id, permission="customers.read_assigned", resource_type="customer"
        )
    )
    assert everything.all and not everything.resource_ids
    bad = rbac_pb2.LookupResourcesRequest(
        user_id=u["clerk"], team_id=team_id, permission="customers.read", resource_type="customer", page={"limit": 500}
    )
    assert (await domain_error(rbac.stub.LookupResources(bad))).code == "validation_error"


async def test_a_new_replica_loads_every_team_at_start(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str
) -> None:
    first = await start(make_settings(tmp_path / "a", database_url, nats_url, redis_url))
    try:
        team_id, u = await new_team(first.stub, owner="owner", clerk="staff")
        second = await start(make_settings(tmp_path / "b", database_url, nats_url, redis_url))
        try:
            await second.listening()
            cache = second.rt.rbac.cache  # type: ignore[attr-defined]
            await eventually(lambda: cache.peek(team_id), lambda found: found is not None, what="the team preloaded")
            loads = cache.loads
            answer = await second.stub.Check(_check(u["clerk"], team_id, "reports.read"))
            assert answer.allowed and answer.revision == 2
            assert cache.loads == loads  # answered from memory
        finally:
            await second.close()
    finally:
        await first.close()
