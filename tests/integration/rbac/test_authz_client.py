"""AuthzClient against real rbac replicas and NATS: cached decisions, invalidation by change
events, at_least_revision, round-robin, deadlines and failing closed."""

from __future__ import annotations

from pathlib import Path

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.ids import new_id
from deelrx_sdk import AuthzClient, CheckItem
from deploy.local.infra import free_port
from tests.integration.harness import make_settings

from .conftest import Running, ctx, new_team, start


async def test_decisions_are_cached_until_a_change_is_announced(rbac: Running, nats_url: str) -> None:
    await rbac.listening()
    team_id, u = await new_team(rbac.stub, owner="owner", clerk="staff")
    async with AuthzClient([f"127.0.0.1:{rbac.rt.grpc.port}"], nats_url=nats_url) as client:
        first = await client.check(u["clerk"], team_id, "reports.read")
        assert first.allowed and first.reason == "role staff grants reports.read" and first.revision == 2
        calls = client.calls
        again = await client.check(u["clerk"], team_id, "reports.read")
        assert again.allowed and again.cached and client.calls == calls

        # A role-permission change: the very next check is decided at the new revision.
        changed = await rbac.stub.SetRolePermissions(
            rbac_pb2.SetRolePermissionsRequest(
                context=ctx(u["owner"]), team_id=team_id, role="staff", permissions=["customers.read_assigned"]
            )
        )
        after = await client.check(u["clerk"], team_id, "reports.read", at_least_revision=changed.revision)
        assert not after.allowed and after.revision == changed.revision == 3
        # Without passing the revision, the announcement alone makes the cache drop the answer.
        assert not (await client.check(u["clerk"], team_id, "reports.read")).allowed

        # An unassignment.
        assigned = await rbac.stub.AssignCustomer(
            rbac_pb2.AssignCustomerRequest(
                context=ctx(u["owner"]), team_id=team_id, customer_id="c_1", user_id=u["clerk"]
            )
        )
        assert await client.allowed(u["clerk"], team_id, "customers.read_assigned", "customer:c_1")
        await rbac.stub.UnassignCustomer(
            rbac_pb2.UnassignCustomerRequest(
                context=ctx(u["owner"]), team_id=team_id, customer_id="c_1", user_id=u["clerk"]
            )
        )
        denied = await client.check(u["clerk"], team_id, "customers.read_assigned", "customer:c_1")
        assert not denied.allowed and denied.revision > assigned.revision

        # A removal.
        assert await client.allowed(u["clerk"], team_id, "customers.read_assigned")
        await rbac.stub.RemoveMember(
            rbac_pb2.RemoveMemberRequest(context=ctx(u["owner"]), team_id=team_id, user_id=u["clerk"])
        )
        gone = await client.check(u["clerk"], team_id, "customers.read_assigned")
        assert (gone.allowed, gone.reason) == (False, "not a member")


async def test_a_write_on_one_replica_is_seen_through_the_other(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str
) -> None:
    first = await start(make_settings(tmp_path / "a", database_url, nats_url, redis_url))
    second = await start(make_settings(tmp_path / "b", database_url, nats_url, redis_url))
    try:
        await first.listening()
        await second.listening()
        team_id, u = await new_team(first.stub, owner="owner", boss="manager")
        targets = [f"127.0.0.1:{r.rt.grpc.port}" for r in (first, second)]
        async with AuthzClient(targets, nats_url=nats_url) as client:
            items = [CheckItem(u["boss"], team_id, p) for p in ("billing.read", "members.read", "audit.read")]
            assert [d.allowed for d in await client.check_many(items)] == [False, True, True]
            changed = await first.stub.SetRolePermissions(
                rbac_pb2.SetRolePermissionsRequest(
                    context=ctx(u["owner"]), team_id=team_id, role="manager", permissions=["billing.read"]
                )
            )
            # Whichever replica answers, the decision is at least as new as the write.
            for _ in range(4):
                answers = await client.check_many(
                    [CheckItem(i.user_id, i.team_id, i.permission, at_least_revision=changed.revision) for i in items]
                )
                assert [d.allowed for d in answers] == [True, False, False]
                assert {d.revision for d in answers} == {changed.revision}
    finally:
        await first.close()
        await second.close()


async def test_fails_closed(rbac: Running, nats_url: str) -> None:
    team_id, u = await new_team(rbac.stub, owner="owner")
    dead = f"127.0.0.1:{free_port()}"
    async with AuthzClient([dead], deadline_seconds=0.3) as client:
        decision = await client.check(u["owner"], team_id, "billing.manage")
        assert not decision.allowed and decision.reason.startswith("authorization unavailable")
    # One dead replica among live ones is skipped.
    async with AuthzClient([dead, f"127.0.0.1:{rbac.rt.grpc.port}"], deadline_seconds=2) as client:
        for _ in range(3):
            assert await client.allowed(u["owner"], team_id, "billing.manage")
        bad = await client.check(u["owner"], team_id, "no.such.permission")
        assert not bad.allowed and bad.reason.startswith("invalid check")
        outsider = await client.check(new_id("usr"), team_id, "reports.read")
        assert (outsider.allowed, outsider.reason) == (False, "not a member")
    client = AuthzClient([f"127.0.0.1:{rbac.rt.grpc.port}"])
    decision = await client.check(u["owner"], team_id, "billing.manage")  # not started
    assert not decision.allowed
