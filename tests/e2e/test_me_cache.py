"""`GET /v1/auth/me` from the gateway's caches: no gRPC call while nothing changed, and every
change visible in the next /me, at the replica that made it and at another one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from deelrx.common.v1 import common_pb2
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx_kit.grpc_server import channel
from deploy.local import infra
from tests.e2e.conftest import RunningSuite
from tests.e2e.team_flows import Member, account, create_team, join, switch
from tests.e2e.test_account_security import enable_totp
from tests.e2e.test_sessions_in_the_browser import second_gateway  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e

ME_READS = (
    "IdentityService/GetUser",
    "SessionsService/GetSession",
    "IdentityService/GetTeams",
    "RbacService/GetMembership",
)


@pytest.fixture
def deaf_replica(suite: RunningSuite, tmp_path) -> Iterator[str]:
    """Another gateway replica on the same services and Redis, but whose NATS is unreachable: no
    notice ever reaches it, so what it learns of changes comes from the revisions in Redis."""
    port = infra.free_port()
    env = {
        **os.environ,
        **suite.env,
        "DEELRX_HTTP_PORT": str(port),
        "DEELRX_ADMIN_PORT": str(infra.free_port()),
        "DEELRX_NATS_URL": f"nats://127.0.0.1:{infra.free_port()}",
    }
    log = open(tmp_path / "gateway-deaf.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stdout=log, stderr=log)
    try:
        infra.wait_for_port(port, proc=proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/.well-known/jwks.json").status_code != 200:  # keys loaded
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def _gateway_calls(suite: RunningSuite) -> dict[str, float]:
    """gRPC calls the gateway made so far, by method (its admin /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{suite.env['DEELRX_ADMIN_PORT']}/metrics").text
    calls: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "deelrx_gateway_grpc_calls":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    calls[sample.labels["method"]] = sample.value
    return calls


def _admin_counter(suite: RunningSuite, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{suite.env['DEELRX_ADMIN_PORT']}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def _past_the_tokens_second(client: httpx.Client) -> None:
    """Wait out the second the caller's token was issued in: a session summary loaded in that
    second is read again once (iat has a resolution of a second; docs/architecture.md)."""
    import jwt

    token = client.headers["Authorization"].removeprefix("Bearer ")
    iat = jwt.decode(token, options={"verify_signature": False})["iat"]
    time.sleep(max(0.0, iat + 1.05 - time.time()))


def _me(client: httpx.Client, base: str | None = None) -> dict:
    r = client.get(f"{base}/v1/auth/me" if base else "/v1/auth/me")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _team_with_member(suite: RunningSuite) -> tuple[Member, Member, str]:
    owner = account(suite)
    team_id = create_team(owner, "Cache Co")
    switch(owner, team_id)
    member = join(suite, owner, team_id, "staff")
    switch(member, team_id)
    return owner, member, team_id


def _change_role_behind_the_gateway(suite: RunningSuite, team_id: str, user_id: str, role: str) -> None:
    """Straight to rbac: no gateway sees this write, and no change stamp moves."""

    async def change() -> None:
        async with channel(suite.env["DEELRX_RBAC_ADDR"]) as ch:
            await rbac_pb2_grpc.RbacServiceStub(ch).ChangeRole(
                rbac_pb2.ChangeRoleRequest(
                    context=common_pb2.RequestContext(),
                    team_id=team_id,
                    user_id=user_id,
                    role=role,
                    actor_role="owner",
                )
            )

    asyncio.run(change())


def test_a_warm_me_makes_no_grpc_call(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    switch(owner, team_id)
    _past_the_tokens_second(owner.client)
    cold = _gateway_calls(suite)
    first = _me(owner.client)  # fills the caches
    assert first["team"]["id"] == team_id and first["team"]["role"] == "owner"
    filled = _gateway_calls(suite)
    # The counter sees /me's reads (the plan cache may have read the team already).
    assert all(filled.get(m, 0) > cold.get(m, 0) for m in ME_READS if m != "IdentityService/GetTeams"), filled
    before = _gateway_calls(suite)
    answers = [_me(owner.client) for _ in range(30)]
    # A question asked by POST changes nothing, so it leaves the cache warm too.
    assert owner.client.post("/v1/authz/check", json={"permission": "customers.read"}).status_code == 200
    answers += [_me(owner.client) for _ in range(5)]
    after = _gateway_calls(suite)
    assert all(a == first for a in answers)
    made = {m: after.get(m, 0) - before.get(m, 0) for m in ME_READS}
    # The rate limiter's plan cache (30 s expiry) may ask GetTeams once inside the window.
    assert made.pop("IdentityService/GetTeams") <= 1, made
    assert set(made.values()) == {0}, made


def test_changes_are_in_the_next_me_at_every_replica(suite: RunningSuite, deaf_replica: str) -> None:
    owner, member, team_id = _team_with_member(suite)
    replica = deaf_replica  # hears no NATS notice: only the revisions can tell it
    # Warm both replicas' caches for the member.
    for base in (None, replica):
        me = _me(member.client, base)
        assert me["team"]["role"] == "staff" and me["team"]["plan"] == "starter"
        assert me["user"]["mfa_enabled"] is False

    # An owner changes the member's role (at the first replica): the member's next /me, anywhere.
    r = owner.client.patch(f"/v1/teams/{team_id}/members/{member.user_id}", json={"role": "manager"})
    assert r.status_code == 200, r.text
    for base in (replica, None):
        me = _me(member.client, base)
        assert me["team"]["role"] == "manager", me
        assert "members.invite" in me["permissions"]

    # A plan change.
    r = owner.client.put(f"/v1/teams/{team_id}/billing", json={"plan": "enterprise"})
    assert r.status_code == 200, r.text
    assert _me(member.client, replica)["team"]["plan"] == "enterprise"
    assert _me(member.client)["team"]["plan"] == "enterprise"

    # A profile change the member makes at the second replica, read at the first.
    token = member.client.headers["Authorization"].removeprefix("Bearer ")
    with httpx.Client(base_url=replica, timeout=20) as at_replica:
        enable_totp(at_replica, {"access_token": token})
    assert _me(member.client)["user"]["mfa_enabled"] is True
    assert _me(member.client, replica)["user"]["mfa_enabled"] is True

    # A team switch: the owner's new token is bound to another team.
    other = create_team(owner, "Other Co")
    _me(owner.client, replica)
    switch(owner, other)
    assert _me(owner.client, replica)["team"]["id"] == other

    # A logout at one replica: the session is refused at the other.
    assert member.client.post("/v1/auth/logout").status_code == 204
    assert member.client.get(f"{replica}/v1/auth/me").status_code == 401


def test_a_change_made_behind_the_gateway_arrives_with_its_notice(suite: RunningSuite, second_gateway: str) -> None:  # noqa: F811
    _, member, team_id = _team_with_member(suite)
    for base in (None, second_gateway):
        assert _me(member.client, base)["team"]["role"] == "staff"

    _change_role_behind_the_gateway(suite, team_id, member.user_id, "manager")
    for base in (None, second_gateway):
        deadline = time.monotonic() + 10
        while _me(member.client, base)["team"]["role"] != "manager":
            assert time.monotonic() < deadline, "the rbac.changed notice never reached the gateway"
            time.sleep(0.05)


def test_a_replica_whose_nats_is_down_trusts_its_cache_for_seconds_only(suite: RunningSuite, deaf_replica: str) -> None:
    _, member, team_id = _team_with_member(suite)
    for _ in range(2):  # loads, then serves from memory
        assert _me(member.client, deaf_replica)["team"]["role"] == "staff"
    _change_role_behind_the_gateway(suite, team_id, member.user_id, "manager")
    # Its notice cannot reach this replica, and no stamp moved: only the short lifetime of entries
    # while the feed is down (seconds, not the 5 minutes of a connected replica) brings it.
    deadline = time.monotonic() + 45
    while _me(member.client, deaf_replica)["team"]["role"] != "manager":
        assert time.monotonic() < deadline, "the replica kept serving the old role"
        time.sleep(1.5)  # at most ~30 requests: well inside the team's starter rate


def test_verify_makes_one_redis_round_trip_and_no_grpc_call(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    switch(owner, team_id)
    assert owner.client.get("/v1/auth/verify").status_code == 200  # warms the token, plan and role caches
    trips = _admin_counter(suite, "deelrx_rate_limit_redis_round_trips")
    before = _gateway_calls(suite)
    statuses = [owner.client.get("/v1/auth/verify").status_code for _ in range(25)]
    after = _gateway_calls(suite)
    assert statuses == [200] * 25
    # Rate limit, revocation key and change revisions: one pipeline per request.
    assert _admin_counter(suite, "deelrx_rate_limit_redis_round_trips") - trips == 25
    made = {m: n - before.get(m, 0) for m, n in after.items() if n != before.get(m, 0)}
    # Periodic work only (JWKS refresh, activity batches; the plan cache's 30 s expiry at most once).
    made.pop("SessionsService/GetJwks", None), made.pop("SessionsService/TouchSessions", None)
    assert made in ({}, {"IdentityService/GetTeams": 1}), made
