"""Membership use cases through a real gRPC server on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.ids import new_id
from tests.integration.harness import AuditTap, domain_error

from .conftest import Running, ctx, new_team


def _add(team_id: str, user_id: str, role: str, op: str) -> rbac_pb2.AddMemberRequest:
    return rbac_pb2.AddMemberRequest(context=ctx(), team_id=team_id, user_id=user_id, role=role, operation_id=op)


async def test_add_member_is_idempotent_by_operation_id(rbac: Running) -> None:
    team_id, _ = await new_team(rbac.stub, owner="owner")
    user, op = new_id("usr"), new_id("inv")

    first = await rbac.stub.AddMember(_add(team_id, user, "staff", op))
    again = await rbac.stub.AddMember(_add(team_id, user, "staff", op))
    assert first.created and not again.created
    assert again.membership == first.membership
    assert "reports.read" in first.membership.permissions

    revision = (await rbac.stub.GetMembership(rbac_pb2.GetMembershipRequest(user_id=user, team_id=team_id))).revision
    assert revision == 2  # owner joined, then this user: the replay changed nothing

    # A new operation for an existing member conflicts; a reused id for something else too.
    assert (await domain_error(rbac.stub.AddMember(_add(team_id, user, "staff", new_id("inv"))))).code == "conflict"
    assert (await domain_error(rbac.stub.AddMember(_add(team_id, new_id("usr"), "staff", op)))).code == "conflict"


async def test_concurrent_add_member_with_one_operation_id_applies_once(rbac: Running, audit_tap: AuditTap) -> None:
    await rbac.listening()
    team_id, _ = await new_team(rbac.stub, owner="owner")
    user, op = new_id("usr"), new_id("tm")
    answers = await asyncio.gather(*(rbac.stub.AddMember(_add(team_id, user, "manager", op)) for _ in range(8)))
    assert sorted(a.created for a in answers) == [False] * 7 + [True]
    assert len({a.membership.SerializeToString() for a in answers}) == 1

    members = (await rbac.stub.ListMembers(rbac_pb2.ListMembersRequest(team_id=team_id))).members
    assert [m.user_id for m in members].count(user) == 1
    # Sentinel: one more member after the eight calls; once its event arrived (rbac's outbox
    # relays in order), a second `member.joined` for `user` would have arrived too.
    sentinel = new_id("usr")
    await rbac.stub.AddMember(_add(team_id, sentinel, "staff", new_id("tm")))
    await audit_tap.wait(lambda e: e.team_id == team_id and e.target.id == sentinel)
    joined = [e for e in audit_tap.events if e.team_id == team_id]
    assert sorted(e.type for e in joined) == ["member.joined"] * 3
    assert sum(e.target.id == user for e in joined) == 1


async def test_concurrent_first_members_of_one_team(rbac: Running) -> None:
    # Many invitations accepted at once for a fresh team: every one applies exactly once.
    team_id = new_id("tm")
    users = [new_id("usr") for _ in range(6)]
    ops = [new_id("inv") for _ in users]
    answers = await asyncio.gather(
        *(rbac.stub.AddMember(_add(team_id, u, "staff", o)) for u, o in zip(users, ops, strict=True)),
        *(rbac.stub.AddMember(_add(team_id, u, "staff", o)) for u, o in zip(users, ops, strict=True)),
    )
    assert sum(a.created for a in answers) == len(users)
    got = await rbac.stub.GetMembership(rbac_pb2.GetMembershipRequest(user_id=users[0], team_id=team_id))
    assert got.revision == len(users)


async def test_last_owner_is_protected(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner", boss="manager", clerk="staff")
    owner, boss, clerk = u["owner"], u["boss"], u["clerk"]

    demote = rbac_pb2.ChangeRoleRequest(context=ctx(owner), team_id=team_id, user_id=owner, role="manager")
    assert (await domain_error(rbac.stub.ChangeRole(demote))).code == "conflict"
    remove = rbac_pb2.RemoveMemberRequest(context=ctx(owner), team_id=team_id, user_id=owner)
    assert (await domain_error(rbac.stub.RemoveMember(remove))).code == "conflict"
    # Without a context the declared actor role counts; the last owner is protected anyway.
    assert (
        await domain_error(
            rbac.stub.ChangeRole(
                rbac_pb2.ChangeRoleRequest(team_id=team_id, user_id=owner, role="staff", actor_role="owner")
            )
        )
    ).code == "conflict"

    # Only an owner grants or takes owner; a manager's stored role beats a declared "owner".
    grant = rbac_pb2.ChangeRoleRequest(
        context=ctx(boss), team_id=team_id, user_id=clerk, role="owner", actor_role="owner"
    )
    assert (await domain_error(rbac.stub.ChangeRole(grant))).code == "forbidden"
    take = rbac_pb2.RemoveMemberRequest(context=ctx(boss), team_id=team_id, user_id=owner)
    assert (await domain_error(rbac.stub.RemoveMember(take))).code == "forbidden"
    # Staff lacks members.manage.
    by_staff = rbac_pb2.ChangeRoleRequest(context=ctx(clerk), team_id=team_id, user_id=boss, role="staff")
    assert (await domain_error(rbac.stub.ChangeRole(by_staff))).code == "forbidden"

    # With a second owner the first may step down.
    promoted = await rbac.stub.ChangeRole(
        rbac_pb2.ChangeRoleRequest(context=ctx(owner), team_id=team_id, user_id=boss, role="owner")
    )
    assert promoted.membership.role == "owner"
    assert "billing.manage" in promoted.membership.permissions
    stepped = await rbac.stub.ChangeRole(demote)
    assert stepped.membership.role == "manager"
    assert (
        await domain_error(
            rbac.stub.ChangeRole(
                rbac_pb2.ChangeRoleRequest(context=ctx(boss), team_id=team_id, user_id=boss, role="staff")
            )
        )
    ).code == "conflict"


async def test_concurrent_demotions_never_leave_a_team_without_owner(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, a="owner", b="owner")
    requests = [
        rbac_pb2.ChangeRoleRequest(context=ctx(u["a"]), team_id=team_id, user_id=u["a"], role="manager"),
        rbac_pb2.ChangeRoleRequest(context=ctx(u["b"]), team_id=team_id, user_id=u["b"], role="manager"),
    ]
    results = await asyncio.gather(*(rbac.stub.ChangeRole(r) for r in requests), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    members = (await rbac.stub.ListMembers(rbac_pb2.ListMembersRequest(team_id=team_id))).members
    assert [m.role for m in members].count("owner") == 1


async def test_remove_member_and_transfer_ownership(rbac: Running, audit_tap: AuditTap) -> None:
    await rbac.listening()
    team_id, u = await new_team(rbac.stub, owner="owner", boss="manager", clerk="staff")

    outsider = new_id("usr")
    transfer = rbac_pb2.TransferOwnershipRequest(
        context=ctx(u["owner"]), team_id=team_id, from_user_id=u["owner"], to_user_id=outsider
    )
    assert (await domain_error(rbac.stub.TransferOwnership(transfer))).code == "validation_error"
    not_owner = rbac_pb2.TransferOwnershipRequest(
        context=ctx(u["boss"]), team_id=team_id, from_user_id=u["boss"], to_user_id=u["clerk"]
    )
    assert (await domain_error(rbac.stub.TransferOwnership(not_owner))).code == "forbidden"

    await rbac.stub.TransferOwnership(
        rbac_pb2.TransferOwnershipRequest(
            context=ctx(u["owner"]), team_id=team_id, from_user_id=u["owner"], to_user_id=u["clerk"]
        )
    )
    roles = {
        m.user_id: m.role for m in (await rbac.stub.ListMembers(rbac_pb2.ListMembersRequest(team_id=team_id))).members
    }
    assert roles == {u["owner"]: "manager", u["boss"]: "manager", u["clerk"]: "owner"}

    await rbac.stub.RemoveMember(
        rbac_pb2.RemoveMemberRequest(context=ctx(u["clerk"]), team_id=team_id, user_id=u["boss"])
    )
    missing = await domain_error(
        rbac.stub.GetMembership(rbac_pb2.GetMembershipRequest(user_id=u["boss"], team_id=team_id))
    )
    assert missing.code == "not_found"
    gone = await domain_error(
        rbac.stub.RemoveMember(
            rbac_pb2.RemoveMemberRequest(context=ctx(u["clerk"]), team_id=team_id, user_id=u["boss"])
        )
    )
    assert gone.code == "not_found"

    mine = (await rbac.stub.ListMemberships(rbac_pb2.ListMembershipsRequest(user_id=u["clerk"]))).memberships
    assert [(m.team_id, m.role) for m in mine] == [(team_id, "owner")]
    assert "team.delete" in mine[0].permissions

    events = await audit_tap.wait(lambda e: e.team_id == team_id, 6)
    types = sorted(e.type for e in events)
    assert types == ["member.joined"] * 3 + ["member.removed"] + ["member.role_changed"] * 2
    removed = next(e for e in events if e.type == "member.removed")
    assert removed.target.id == u["boss"] and removed.actor.user_id == u["clerk"]


async def test_bad_input_is_a_validation_error(rbac: Running) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner")
    bad_role = rbac_pb2.AddMemberRequest(team_id=team_id, user_id=new_id("usr"), role="admin", operation_id="op1")
    assert (await domain_error(rbac.stub.AddMember(bad_role))).code == "validation_error"
    no_op = rbac_pb2.AddMemberRequest(team_id=team_id, user_id=new_id("usr"), role="staff")
    assert (await domain_error(rbac.stub.AddMember(no_op))).code == "validation_error"
    dotted = rbac_pb2.CheckRequest(user_id=u["owner"], team_id="tm.x", permission="reports.read")
    assert (await domain_error(rbac.stub.Check(dotted))).code == "validation_error"


async def test_a_removed_members_request_in_flight_cannot_write(rbac: Running) -> None:
    """The gateway's check passed before the removal; the write itself re-reads the actor's role
    under the team's lock and refuses a former member."""
    team_id, u = await new_team(rbac.stub, owner="owner", boss="manager", clerk="staff")
    await rbac.stub.RemoveMember(
        rbac_pb2.RemoveMemberRequest(context=ctx(u["owner"]), team_id=team_id, user_id=u["boss"])
    )
    assign = rbac_pb2.AssignCustomerRequest(
        context=ctx(u["boss"]), team_id=team_id, customer_id="c_1", user_id=u["clerk"]
    )
    assert (await domain_error(rbac.stub.AssignCustomer(assign))).code == "forbidden"
    demote = rbac_pb2.ChangeRoleRequest(context=ctx(u["boss"]), team_id=team_id, user_id=u["clerk"], role="manager")
    assert (await domain_error(rbac.stub.ChangeRole(demote))).code == "forbidden"
    remove = rbac_pb2.RemoveMemberRequest(context=ctx(u["boss"]), team_id=team_id, user_id=u["clerk"])
    assert (await domain_error(rbac.stub.RemoveMember(remove))).code == "forbidden"
    roles = rbac_pb2.SetRolePermissionsRequest(context=ctx(u["boss"]), team_id=team_id, role="staff", permissions=[])
    assert (await domain_error(rbac.stub.SetRolePermissions(roles))).code == "forbidden"
    listed = await rbac.stub.ListAssignedCustomers(
        rbac_pb2.ListAssignedCustomersRequest(team_id=team_id, user_id=u["clerk"])
    )
    assert list(listed.customer_ids) == []
