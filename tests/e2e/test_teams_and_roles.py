"""Teams, invitations and roles through the gateway: the default permission table of the
API for owner, manager and staff, cross-team isolation on every team endpoint, and changes
that take effect on the very next request."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from deelrx.audit.v1 import audit_pb2
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import CSRF_COOKIE, SESSION_COOKIE, account_with_cookies
from tests.e2e.team_flows import Member, account, check, create_team, invite, join, switch

pytestmark = pytest.mark.e2e

# The API's default table, written out independently of the rbac code: (owner, manager, staff).
DEFAULT_TABLE: dict[str, tuple[bool, bool, bool]] = {
    **dict.fromkeys(
        ["team.manage", "members.read", "members.invite", "members.manage", "sessions.manage", "security.manage"],
        (True, True, False),
    ),
    "billing.read": (True, False, False),
    **dict.fromkeys(["billing.manage", "roles.manage", "team.delete"], (True, False, False)),
    **dict.fromkeys(
        ["customers.read", "customers.write", "customers.assign", "orders.read", "orders.write"], (True, True, False)
    ),
    **dict.fromkeys(["customers.read_assigned", "customers.write_assigned"], (True, True, True)),
    "reports.read": (True, True, True),
    **dict.fromkeys(["reports.write", "analytics.read", "audit.read"], (True, True, False)),
}
ROLES = ("owner", "manager", "staff")


@pytest.fixture(scope="module")
def team(suite: RunningSuite):
    """One team with an owner (enterprise plan, so the walk is not rate limited), a manager and
    a staff member assigned to customer c_1, each switched into the team."""
    owner = account(suite)
    team_id = create_team(owner)
    r = owner.client.put(f"/v1/teams/{team_id}/billing", json={"plan": "enterprise"})
    assert r.status_code == 200 and r.json()["plan"] == "enterprise", r.text
    manager = join(suite, owner, team_id, "manager")
    staff = join(suite, owner, team_id, "staff")
    for member in (owner, manager, staff):
        switch(member, team_id)
    r = owner.client.put(f"/v1/teams/{team_id}/customers/c_1/assignees/{staff.user_id}")
    assert r.status_code == 204, r.text
    yield team_id, {"owner": owner, "manager": manager, "staff": staff}
    for member in (owner, manager, staff):
        member.client.close()


@pytest.mark.parametrize("role", ROLES)
def test_default_permission_table_through_authz_check(team, role: str) -> None:
    _, members = team
    member = members[role]
    got = {p: check(member, p) for p in DEFAULT_TABLE}
    assert got == {p: cells[ROLES.index(role)] for p, cells in DEFAULT_TABLE.items()}
    # Assigned-only permissions: staff reach the customers assigned to them, not the others.
    expected_other = role != "staff"
    assert check(member, "customers.read_assigned", "customer:c_1") is True
    assert check(member, "customers.read_assigned", "customer:c_2") is expected_other
    assert check(member, "customers.write_assigned", "customer:c_2") is expected_other


@pytest.mark.parametrize("role", ROLES)
def test_team_endpoints_follow_the_table(team, role: str) -> None:
    team_id, members = team
    member, staff = members[role], members["staff"]
    c = member.client
    allowed = {
        "team.manage": c.patch(f"/v1/teams/{team_id}", json={"name": "Acme"}),
        "members.read": c.get(f"/v1/teams/{team_id}/members"),
        "members.invite": c.get(f"/v1/teams/{team_id}/invitations"),
        "members.manage": c.patch(f"/v1/teams/{team_id}/members/{staff.user_id}", json={"role": "staff"}),
        "sessions.manage": c.get(f"/v1/teams/{team_id}/members/{staff.user_id}/sessions"),
        "billing.read": c.get(f"/v1/teams/{team_id}/billing"),
        "billing.manage": c.put(f"/v1/teams/{team_id}/billing", json={"plan": "enterprise"}),
        "roles.manage": c.put(
            f"/v1/teams/{team_id}/roles/staff",
            json={"permissions": ["customers.read_assigned", "customers.write_assigned", "reports.read"]},
        ),
        "customers.assign": c.put(f"/v1/teams/{team_id}/customers/c_9/assignees/{staff.user_id}"),
    }
    for permission, response in allowed.items():
        expected = DEFAULT_TABLE[permission][ROLES.index(role)]
        if expected:
            assert response.status_code in (200, 204), (permission, response.text)
        else:
            assert response.status_code == 403, (permission, response.text)
            assert response.json()["code"] == "forbidden"
    # Every member reads the team and the role table, and their own assigned customers.
    assert c.get(f"/v1/teams/{team_id}").status_code == 200
    roles = c.get(f"/v1/teams/{team_id}/roles").json()
    assert set(roles["roles"]) == set(ROLES) and "billing.manage" not in roles["configurable"]
    r = c.get(f"/v1/teams/{team_id}/members/{member.user_id}/customers")
    assert r.status_code == 200
    others = c.get(f"/v1/teams/{team_id}/members/{staff.user_id}/customers")
    assert others.status_code == (403 if role == "staff" and member is not staff else 200)


def test_manager_cannot_grant_owner_only_or_owner(team) -> None:
    team_id, members = team
    manager = members["manager"].client
    r = members["owner"].client.put(f"/v1/teams/{team_id}/roles/manager", json={"permissions": ["billing.manage"]})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = members["owner"].client.put(f"/v1/teams/{team_id}/roles/staff", json={"permissions": ["no.such"]})
    assert r.status_code == 422
    r = manager.post(f"/v1/teams/{team_id}/invitations", json={"email": "x@example.com", "role": "owner"})
    assert r.status_code == 403
    r = manager.patch(f"/v1/teams/{team_id}/members/{members['staff'].user_id}", json={"role": "owner"})
    assert r.status_code == 403
    r = manager.patch(f"/v1/teams/{team_id}/members/{members['staff'].user_id}", json={"role": "admin"})
    assert r.status_code == 422


def _fill(path: str, team_id: str, user_id: str) -> str:
    return (
        path.replace("{tid}", team_id)
        .replace("{uid}", user_id)
        .replace("{cid}", "c_1")
        .replace("{iid}", "inv_01aaaaaaaaaaaaaaaaaaaaaaaa")
        .replace("{role}", "staff")
        .replace("{id}", "alr_01aaaaaaaaaaaaaaaaaaaaaaaa")
    )


VALID_BODIES = {
    ("patch", "/v1/teams/{tid}"): {"name": "Mine now"},
    ("patch", "/v1/teams/{tid}/members/{uid}"): {"role": "staff"},
    ("post", "/v1/teams/{tid}/invitations"): {"email": "x@example.com", "role": "staff"},
    ("put", "/v1/teams/{tid}/billing"): {"plan": "enterprise"},
    ("put", "/v1/teams/{tid}/roles/{role}"): {"permissions": []},
    ("patch", "/v1/teams/{tid}/security/alerts/{id}"): {"status": "acknowledged"},
}


def test_cross_team_isolation_on_every_team_endpoint(suite: RunningSuite, team) -> None:
    """A member of team A gets 404 on every team-B endpoint, for every method, answered
    exactly like a team that does not exist."""
    team_a, members = team
    outsider = members["owner"]  # owner of A: the most privileged outsider there is
    owner_b = account(suite)
    team_b = create_team(owner_b, "Beta")
    missing = "tm_01aaaaaaaaaaaaaaaaaaaaaaaa"
    spec = outsider.client.get("/openapi.json").json()
    team_paths = [p for p in spec["paths"] if p.startswith("/v1/teams/{tid}")]
    assert len(team_paths) >= 12
    tried = 0
    for path in team_paths:
        for method in spec["paths"][path]:
            body = VALID_BODIES.get((method, path), {"user_id": owner_b.user_id})
            needs_body = "requestBody" in spec["paths"][path][method]
            kwargs = {"json": body} if needs_body else {}
            answers = []
            for tid in (team_b, missing):
                r = outsider.client.request(method.upper(), _fill(path, tid, owner_b.user_id), **kwargs)
                answers.append((r.status_code, {k: v for k, v in r.json().items() if k != "request_id"}))
            assert answers[0] == answers[1], (method, path, answers)
            assert answers[0][0] == 404 and answers[0][1]["code"] == "not_found", (method, path, answers)
            tried += 1
    assert tried >= 18
    # Ids of team B's members in team A's paths and bodies reach nothing of team B.
    a = outsider.client
    assert a.put(f"/v1/teams/{team_a}/customers/c_1/assignees/{owner_b.user_id}").status_code == 404
    assert a.patch(f"/v1/teams/{team_a}/members/{owner_b.user_id}", json={"role": "staff"}).status_code == 404
    assert a.delete(f"/v1/teams/{team_a}/members/{owner_b.user_id}").status_code == 404
    assert a.get(f"/v1/teams/{team_a}/members/{owner_b.user_id}/sessions").status_code == 404
    assert a.get(f"/v1/teams/{team_a}/members/{owner_b.user_id}/customers").status_code == 404
    r = a.post(f"/v1/teams/{team_a}/transfer-ownership", json={"user_id": owner_b.user_id})
    assert r.status_code == 422
    # Team B is untouched.
    assert owner_b.client.get(f"/v1/teams/{team_b}").json()["name"] == "Beta"
    owner_b.client.close()


def test_changes_take_effect_on_the_very_next_request(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    staff = join(suite, owner, team_id, "staff")
    switch(staff, team_id)
    assert owner.client.put(f"/v1/teams/{team_id}/customers/c_7/assignees/{staff.user_id}").status_code == 204
    assert check(staff, "customers.read_assigned", "customer:c_7")
    assert staff.client.get(f"/v1/teams/{team_id}/members/{staff.user_id}/customers").json() == {
        "customer_ids": ["c_7"]
    }

    # A role-permission change.
    assert check(staff, "reports.read")
    r = owner.client.put(f"/v1/teams/{team_id}/roles/staff", json={"permissions": ["customers.read_assigned"]})
    assert r.status_code == 200 and r.json()["permissions"] == ["customers.read_assigned"]
    assert not check(staff, "reports.read")
    r = owner.client.put(f"/v1/teams/{team_id}/roles/staff", json={"permissions": ["members.read"]})
    assert r.status_code == 200
    assert staff.client.get(f"/v1/teams/{team_id}/members").status_code == 200
    assert (
        owner.client.put(
            f"/v1/teams/{team_id}/roles/staff", json={"permissions": ["customers.read_assigned"]}
        ).status_code
        == 200
    )
    assert staff.client.get(f"/v1/teams/{team_id}/members").status_code == 403

    # An unassignment.
    assert owner.client.delete(f"/v1/teams/{team_id}/customers/c_7/assignees/{staff.user_id}").status_code == 204
    assert not check(staff, "customers.read_assigned", "customer:c_7")

    # A removal: the removed member's session bound to the team is refused at once.
    assert owner.client.delete(f"/v1/teams/{team_id}/members/{staff.user_id}").status_code == 204
    r = staff.client.get("/v1/auth/me")
    assert r.status_code == 401 and r.json()["code"] == "session_expired", r.text
    staff.login_again(suite)
    assert staff.client.get(f"/v1/teams/{team_id}").status_code == 404
    # The used invitation does not bring a removed member back.
    r = staff.client.post("/v1/invitations/accept", json={"token": staff.invite_token})
    assert r.status_code == 400 and r.json()["code"] == "invalid_token", r.text
    assert staff.client.get(f"/v1/teams/{team_id}").status_code == 404
    assert owner.client.delete(f"/v1/teams/{team_id}/members/{staff.user_id}").status_code == 404
    members = owner.client.get(f"/v1/teams/{team_id}/members").json()["members"]
    assert [m["user_id"] for m in members] == [owner.user_id]
    staff.client.close()
    owner.client.close()


def test_invitation_rules_through_the_gateway(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    invitee, stranger = account(suite), account(suite)
    token = invite(suite, owner, team_id, invitee.email.upper(), "manager")
    listed = owner.client.get(f"/v1/teams/{team_id}/invitations").json()
    assert [i["email"].lower() for i in listed["invitations"]] == [invitee.email] and listed["next_cursor"] is None

    r = stranger.client.post("/v1/invitations/accept", json={"token": token})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    # The same token accepted concurrently: one membership.
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: invitee.client.post("/v1/invitations/accept", json={"token": token}), range(4))
        )
    assert any(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert all(a.status_code in (200, 400) for a in answers), [a.text for a in answers]
    members = owner.client.get(f"/v1/teams/{team_id}/members").json()["members"]
    assert sorted(m["role"] for m in members) == ["manager", "owner"]
    assert r.headers["content-type"].startswith("application/problem+json")

    # An existing member invited again and accepting: 409.
    again = invite(suite, owner, team_id, invitee.email, "staff")
    r = invitee.client.post("/v1/invitations/accept", json={"token": again})
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    # Revoked invitations stop working.
    revoked = invite(suite, owner, team_id, stranger.email, "staff")
    inv_id = owner.client.get(f"/v1/teams/{team_id}/invitations").json()["invitations"][0]["id"]
    assert owner.client.delete(f"/v1/teams/{team_id}/invitations/{inv_id}").status_code == 204
    r = stranger.client.post("/v1/invitations/accept", json={"token": revoked})
    assert r.status_code == 400 and r.json()["code"] == "invalid_token"
    r = stranger.client.post("/v1/invitations/accept", json={"token": "x" * 600})
    assert r.status_code == 422


def test_last_owner_and_ownership_transfer(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    second = join(suite, owner, team_id, "owner")
    r = owner.client.patch(f"/v1/teams/{team_id}/members/{owner.user_id}", json={"role": "manager"})
    assert r.status_code == 200  # two owners: one may step down
    r = second.client.patch(f"/v1/teams/{team_id}/members/{second.user_id}", json={"role": "manager"})
    assert r.status_code == 409 and r.json()["code"] == "conflict"
    assert second.client.delete(f"/v1/teams/{team_id}/members/{second.user_id}").status_code == 409
    r = second.client.patch(f"/v1/teams/{team_id}/members/{owner.user_id}", json={"role": "owner"})
    assert r.status_code == 200

    # Two owners demoting each other at once: one owner always remains.
    barrier = threading.Barrier(2)

    def demote(actor: Member, target: Member):
        barrier.wait()
        return actor.client.patch(f"/v1/teams/{team_id}/members/{target.user_id}", json={"role": "manager"})

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda pair: demote(*pair), [(owner, second), (second, owner)]))
    codes = sorted(r.status_code for r in results)
    assert codes in ([200, 403], [200, 409]), [r.text for r in results]
    roles = {m["user_id"]: m["role"] for m in _members(owner, second, team_id)}
    assert list(roles.values()).count("owner") == 1
    current = owner if roles[owner.user_id] == "owner" else second
    former = second if current is owner else owner

    r = current.client.post(f"/v1/teams/{team_id}/transfer-ownership", json={"user_id": former.user_id})
    assert r.status_code == 200, r.text
    roles = {m["user_id"]: m["role"] for m in _members(owner, second, team_id)}
    assert roles == {former.user_id: "owner", current.user_id: "manager"}
    r = current.client.post(f"/v1/teams/{team_id}/transfer-ownership", json={"user_id": former.user_id})
    assert r.status_code == 403


def _events_until(nats_url: str, done, since: float, timeout: float = 20.0) -> list[audit_pb2.AuditEvent]:
    """Audit events published after `since`, read from one ordered consumer until `done(found)`."""

    async def collect() -> list[audit_pb2.AuditEvent]:
        nc = await nats.connect(nats_url)
        sub = await nc.jetstream().subscribe(
            "audit.events.>", ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        found: list[audit_pb2.AuditEvent] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not done(found):
                try:
                    msg = await sub.next_msg(timeout=1)
                except nats.errors.TimeoutError:
                    continue
                event = audit_pb2.AuditEvent.FromString(msg.data)
                if event.time.ToSeconds() >= int(since) - 1:
                    found.append(event)
        finally:
            await sub.unsubscribe()
            await nc.close()
        return found

    return asyncio.run(collect())


def _members(a: Member, b: Member, team_id: str) -> list[dict]:
    for member in (a, b):
        r = member.client.get(f"/v1/teams/{team_id}/members")
        if r.status_code == 200:
            return list(r.json()["members"])
    raise AssertionError("neither can list members")


def test_teams_listing_switch_and_bad_input(suite: RunningSuite) -> None:
    owner = account(suite)
    first, second = create_team(owner, "One"), create_team(owner, "Two")
    listed = owner.client.get("/v1/teams").json()["teams"]
    assert {(t["id"], t["role"]) for t in listed} == {(first, "owner"), (second, "owner")}
    switch(owner, second)
    me = owner.client.get("/v1/auth/me").json()
    assert me["team"]["id"] == second and "billing.manage" in me["permissions"]
    r = owner.client.post("/v1/auth/switch-team", json={"team_id": "tm_01aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert r.status_code == 404
    r = owner.client.patch(f"/v1/teams/{first}", json={"settings": {"session_idle_timeout_minutes": 15}})
    assert r.status_code == 200 and r.json()["settings"]["session_idle_timeout_minutes"] == 15
    # Switching into it: the session's idle limit follows the team (15 minutes, not 30).
    r = owner.client.post("/v1/auth/switch-team", json={"team_id": first})
    assert r.status_code == 200, r.text
    owner.client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    idle = datetime.fromisoformat(r.json()["session"]["idle_expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < idle - datetime.now(UTC) <= timedelta(minutes=15, seconds=5)
    for bad in (
        {"settings": {"session_idle_timeout_minutes": 600}},
        {"settings": {"session_absolute_timeout_hours": 0}},
        {"name": ""},
        {"unknown": 1},
    ):
        r = owner.client.patch(f"/v1/teams/{first}", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert owner.client.post("/v1/teams", json={"name": "x" * 101}).status_code == 422
    assert owner.client.put(f"/v1/teams/{first}/billing", json={"plan": "gold"}).status_code == 422
    r = owner.client.put(f"/v1/teams/{first}/customers/bad%20id/assignees/{owner.user_id}")
    assert r.status_code == 422
    r = owner.client.post("/v1/authz/check", json={"permission": "no.such"})
    assert r.status_code == 422
    assert re.fullmatch(r"tm_[0-9a-z]{26}", first)
    owner.client.close()


def test_plan_change_applies_at_once_and_denials_are_audited(suite: RunningSuite) -> None:
    started = time.time()
    owner = account(suite)
    team_id = create_team(owner)
    manager = join(suite, owner, team_id, "manager")
    switch(owner, team_id)
    assert '"team-starter"' in owner.client.get("/v1/auth/me").headers["RateLimit-Policy"]
    r = owner.client.put(f"/v1/teams/{team_id}/billing", json={"plan": "professional", "billing_email": "ap@x.io"})
    assert r.json() == {"plan": "professional", "billing_email": "ap@x.io"}
    assert owner.client.get(f"/v1/teams/{team_id}/billing").json()["plan"] == "professional"
    policy = owner.client.get("/v1/auth/me").headers["RateLimit-Policy"]
    assert policy == '"team-professional";q=1000;w=60'

    r = manager.client.put(f"/v1/teams/{team_id}/billing", json={"plan": "enterprise"})
    assert r.status_code == 403
    outsider = account(suite)
    assert outsider.client.get(f"/v1/teams/{team_id}/members").status_code == 404
    events = _events_until(
        suite.nats_url,
        lambda found: (
            {manager.user_id, outsider.user_id}
            <= {e.actor.user_id for e in found if e.type == "authz.denied" and e.target.id == team_id}
            and any(e.type == "billing.plan_changed" and e.team_id == team_id for e in found)
        ),
        started,
    )
    denied = [e for e in events if e.type == "authz.denied" and e.target.id == team_id]
    by_actor = {e.actor.user_id: e for e in denied}
    assert by_actor[manager.user_id].team_id == team_id
    assert by_actor[manager.user_id].details["permission"] == "billing.manage"
    assert by_actor[outsider.user_id].team_id == ""  # a non-member's probe is not in the team's trail
    changed = [e for e in events if e.type == "billing.plan_changed" and e.team_id == team_id]
    assert changed and changed[0].details["to_plan"] == "professional"
    for member in (owner, manager, outsider):
        member.client.close()


def test_switch_team_with_cookies_reissues_cookies(suite: RunningSuite) -> None:
    with suite.client() as browser:
        account_with_cookies(suite, browser)
        csrf = {"X-CSRF-Token": browser.cookies[CSRF_COOKIE]}
        assert browser.post("/v1/teams", json={"name": "No CSRF"}).status_code == 403
        r = browser.post("/v1/teams", json={"name": "Cookie Co"}, headers=csrf)
        assert r.status_code == 201, r.text
        team_id = r.json()["id"]
        before = browser.cookies[SESSION_COOKIE]
        r = browser.post("/v1/auth/switch-team", json={"team_id": team_id}, headers=csrf)
        assert r.status_code == 200, r.text
        assert "access_token" not in r.json() and r.json()["team"] == {
            "id": team_id,
            "name": "Cookie Co",
            "plan": "starter",
            "role": "owner",
        }
        assert r.headers["cache-control"] == "no-store"
        assert browser.cookies[SESSION_COOKIE] != before
        me = browser.get("/v1/auth/me").json()
        assert me["team"]["id"] == team_id and me["team"]["role"] == "owner"


def test_team_mfa_policy_at_patch_and_switch(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    staff = join(suite, owner, team_id, "staff")
    # The author of the policy must have TOTP already.
    r = owner.client.patch(f"/v1/teams/{team_id}", json={"settings": {"mfa_required": True}})
    assert r.status_code == 403 and r.json()["code"] == "mfa_enrollment_required", r.text
    asyncio.run(_require_mfa_in_store(suite, team_id))
    # A member without TOTP may not switch into the team.
    r = staff.client.post("/v1/auth/switch-team", json={"team_id": team_id})
    assert r.status_code == 403 and r.json()["code"] == "mfa_enrollment_required", r.text


async def _require_mfa_in_store(suite: RunningSuite, team_id: str) -> None:
    from sqlalchemy import update

    from deelrx_kit.db import create_engine
    from services.identity.adapters.tables import teams

    engine = create_engine(suite.settings.service_database_url("identity"), "identity")
    try:
        async with engine.begin() as conn:
            await conn.execute(update(teams).where(teams.c.id == team_id).values(mfa_required=True))
    finally:
        await engine.dispose()
