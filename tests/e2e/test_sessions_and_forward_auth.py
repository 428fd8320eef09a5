"""The caller's sessions (list, revoke one / others / all), new-device events, and forward auth
(`/v1/auth/verify`) through the real suite, including a second gateway replica."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx_kit.grpc_server import channel
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import CSRF_COOKIE, PASSWORD, REFRESH_COOKIE, SESSION_COOKIE, new_email, sign_up_and_verify
from tests.e2e.test_sessions_in_the_browser import second_gateway  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)


def _login(suite: RunningSuite, email: str, ua: str, delivery: str = "body") -> dict:
    with suite.client(headers={"User-Agent": ua}) as client:
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": delivery})
        assert r.status_code == 200, r.text
        body = r.json()
        if delivery == "cookie":
            body["cookies"] = dict(client.cookies)
        return body


def _bearer(tokens: dict, ua: str = FIREFOX) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}", "User-Agent": ua}


def _account(suite: RunningSuite) -> str:
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
    return email


def test_sessions_list_devices_and_current(suite: RunningSuite) -> None:
    email = _account(suite)
    laptop = _login(suite, email, FIREFOX)
    phone = _login(suite, email, IPHONE)
    with suite.client(headers=_bearer(laptop)) as api:
        r = api.get("/v1/sessions")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    sessions = {s["id"]: s for s in r.json()["sessions"]}
    assert set(sessions) == {laptop["session"]["id"], phone["session"]["id"]}
    mine, other = sessions[laptop["session"]["id"]], sessions[phone["session"]["id"]]
    assert mine["current"] is True and other["current"] is False
    assert mine["device"] == {"browser": "Firefox", "os": "Linux", "type": "desktop", "label": "Firefox on Linux"}
    assert other["device"]["type"] == "mobile" and other["device"]["os"] == "iOS"
    assert other["device"]["label"] == "Mobile Safari on iOS"
    assert mine["ip"] == "127.0.0.1" and mine["amr"] == ["pwd"]
    for field in ("created_at", "last_seen_at", "expires_at"):
        assert mine[field].endswith("Z"), mine
    assert set(mine) == {"id", "current", "device", "ip", "created_at", "last_seen_at", "expires_at", "amr"}


def test_revoke_one_session_is_idempotent_and_only_for_the_owner(suite: RunningSuite, second_gateway: str) -> None:  # noqa: F811
    email = _account(suite)
    laptop, phone = _login(suite, email, FIREFOX), _login(suite, email, IPHONE)
    stranger = _login(suite, _account(suite), CHROME_MAC)
    phone_id = phone["session"]["id"]
    with httpx.Client(base_url=second_gateway, headers=_bearer(phone), timeout=10) as replica:
        assert replica.get("/v1/auth/me").status_code == 200
        with suite.client(headers=_bearer(laptop)) as api:
            # Someone else's session, malformed ids: not found, and nothing revoked.
            for bad in (stranger["session"]["id"], "ses_123", "not-a-session", "ses_" + "0" * 25 + "!"):
                r = api.delete(f"/v1/sessions/{bad}")
                assert r.status_code == 404 and r.json()["code"] == "not_found", (bad, r.text)
            r = api.delete(f"/v1/sessions/{phone_id}")
            assert r.status_code == 204, r.text
            # The other replica refuses the revoked session on its very next request.
            r = replica.get("/v1/auth/me")
            assert r.status_code == 401 and r.json()["code"] == "session_expired"
            assert api.delete(f"/v1/sessions/{phone_id}").status_code == 204  # again: idempotent
            listed = [s["id"] for s in api.get("/v1/sessions").json()["sessions"]]
            assert listed == [laptop["session"]["id"]]
    with suite.client(headers=_bearer(stranger, CHROME_MAC)) as api:
        assert api.get("/v1/auth/me").status_code == 200  # untouched
    with suite.client() as client:  # the refresh token died with the session
        r = client.post("/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
        assert r.status_code == 401 and r.json()["code"] == "session_expired"


def test_revoke_others_and_all(suite: RunningSuite) -> None:
    email = _account(suite)
    browser = _login(suite, email, FIREFOX, delivery="cookie")
    phone, tablet = _login(suite, email, IPHONE), _login(suite, email, CHROME_MAC)
    cookies = browser["cookies"]
    csrf = {"X-CSRF-Token": cookies[CSRF_COOKIE]}
    with suite.client(cookies=cookies) as web:
        for query in ("", "?scope=", "?scope=everything", "?scope=ALL"):
            r = web.delete(f"/v1/sessions{query}", headers=csrf)
            assert r.status_code == 422 and r.json()["code"] == "validation_error", (query, r.text)
            assert r.json()["errors"][0]["pointer"] == "/scope"
        r = web.delete("/v1/sessions?scope=others")  # cookie-authenticated: CSRF header required
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        r = web.delete("/v1/sessions?scope=others", headers=csrf)
        assert r.status_code == 200 and r.json() == {"revoked": 2}, r.text
        assert web.get("/v1/auth/me").status_code == 200  # this one survives
        for other in (phone, tablet):
            with suite.client(headers=_bearer(other)) as api:
                assert api.get("/v1/auth/me").status_code == 401
        assert web.delete("/v1/sessions?scope=others", headers=csrf).json() == {"revoked": 0}
        r = web.delete("/v1/sessions?scope=all", headers=csrf)
        assert r.status_code == 200 and r.json() == {"revoked": 1}
        cleared = [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")]
        assert cleared and "Max-Age=0" in cleared[0]
    with suite.client(cookies=cookies) as web:
        assert web.get("/v1/auth/me").status_code == 401


def test_first_login_from_an_unseen_device_emits_new_device(suite: RunningSuite) -> None:
    email = _account(suite)
    first = _login(suite, email, FIREFOX)
    _login(suite, email, FIREFOX)  # same device again: no event
    _login(suite, email, IPHONE)
    user_id = first["user"]["id"]

    async def events() -> list[audit_pb2.AuditEvent]:
        async with channel(suite.env["DEELRX_AUDIT_ADDR"]) as ch:
            stub = audit_pb2_grpc.AuditServiceStub(ch)
            found: list[audit_pb2.AuditEvent] = []
            for _ in range(100):
                reply = await stub.QueryEvents(
                    audit_pb2.QueryEventsRequest(user_id=user_id, types=["session.new_device", "session.created"])
                )
                found = list(reply.events)
                if sum(e.type == "session.created" for e in found) == 3 and (
                    sum(e.type == "session.new_device" for e in found) >= 2
                ):
                    break
                await asyncio.sleep(0.1)
            return found

    found = asyncio.run(events())
    labels = sorted(e.details.fields["device"].string_value for e in found if e.type == "session.new_device")
    assert labels == ["Firefox on Linux", "Mobile Safari on iOS"], labels


# -- forward auth ---------------------------------------------------------------------------


def _team_member(suite: RunningSuite, email: str, role: str) -> tuple[str, str]:
    """Make the account a `role` in a new team, which becomes its active team; (user id, team id)."""
    user_id = _login(suite, email, FIREFOX)["user"]["id"]

    async def setup() -> str:
        async with channel(suite.env["DEELRX_IDENTITY_ADDR"]) as ich, channel(suite.env["DEELRX_RBAC_ADDR"]) as rch:
            team = (
                await identity_pb2_grpc.IdentityServiceStub(ich).CreateTeam(
                    identity_pb2.CreateTeamRequest(owner_user_id=user_id, name="Forward Co")
                )
            ).team
            await rbac_pb2_grpc.RbacServiceStub(rch).AddMember(
                rbac_pb2.AddMemberRequest(team_id=team.id, user_id=user_id, role=role, operation_id=team.id)
            )
            return str(team.id)

    return user_id, asyncio.run(setup())


def _change_role(suite: RunningSuite, team_id: str, user_id: str, role: str) -> None:
    async def change() -> None:
        async with channel(suite.env["DEELRX_RBAC_ADDR"]) as ch:
            await rbac_pb2_grpc.RbacServiceStub(ch).ChangeRole(
                rbac_pb2.ChangeRoleRequest(
                    context=common_pb2.RequestContext(), team_id=team_id, user_id=user_id, role=role, actor_role="owner"
                )
            )

    asyncio.run(change())


def test_verify_answers_identity_headers_and_checks_permissions(suite: RunningSuite) -> None:
    email = _account(suite)
    user_id, team_id = _team_member(suite, email, "staff")
    tokens = _login(suite, email, FIREFOX)
    with suite.client(headers=_bearer(tokens)) as api:
        r = api.get("/v1/auth/verify", headers={"X-User-Id": "usr_spoofed", "X-Role": "owner"})
        assert r.status_code == 200, r.text
        assert r.headers["x-user-id"] == user_id and r.headers["x-team-id"] == team_id
        assert r.headers["x-session-id"] == tokens["session"]["id"] and r.headers["x-role"] == "staff"
        assert r.headers["cache-control"] == "no-store" and r.headers["ratelimit-policy"].startswith('"team-starter"')
        assert api.get("/v1/auth/verify?permission=reports.read").status_code == 200
        r = api.get("/v1/auth/verify?permission=reports.write")
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = api.get("/v1/auth/verify?permission=customers.read_assigned&resource=customer:c_42")
        assert r.status_code == 403  # not assigned
        for bad in ("permission=DROP%20TABLE", "permission=a.b&resource=../../etc", "resource=customer:c_1"):
            r = api.get(f"/v1/auth/verify?{bad}")
            assert r.status_code == 422 and r.json()["code"] == "validation_error", (bad, r.text)
        # A role change reaches X-Role through rbac's change event (the role cache is dropped).
        _change_role(suite, team_id, user_id, "manager")
        deadline = time.monotonic() + 5
        while api.get("/v1/auth/verify").headers.get("x-role") != "manager":
            assert time.monotonic() < deadline, "X-Role kept the old role"
            time.sleep(0.05)
        assert api.get("/v1/auth/verify?permission=reports.write").status_code == 200


def test_verify_refuses_bad_credentials_cleanly(suite: RunningSuite) -> None:
    email = _account(suite)
    tokens = _login(suite, email, FIREFOX)
    other = _login(suite, _account(suite), FIREFOX)
    browser = _login(suite, email, CHROME_MAC, delivery="cookie")
    with suite.client() as anon:
        for headers in (
            {},
            {"X-User-Id": "usr_spoofed", "X-Session-Id": "ses_x"},
            {"Authorization": "Bearer " + "a" * 20_000},
            {"Authorization": "Basic dXNlcjpwdw=="},
            {"Authorization": f"Bearer {tokens['access_token']}x"},
        ):
            r = anon.get("/v1/auth/verify", headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
            assert "x-user-id" not in r.headers
        # Two Authorization headers are ambiguous: refused, never the "right" one picked.
        r = anon.get(
            "/v1/auth/verify",
            headers=[
                ("Authorization", f"Bearer {tokens['access_token']}"),
                ("Authorization", f"Bearer {other['access_token']}"),
            ],
        )
        assert r.status_code == 401
    # Bearer and cookies: the Bearer wins, and a bad Bearer never falls back to the cookies.
    with suite.client(cookies=browser["cookies"]) as web:
        assert web.get("/v1/auth/verify").headers["x-user-id"] == browser["user"]["id"]
        r = web.get("/v1/auth/verify", headers={"Authorization": f"Bearer {other['access_token']}"})
        assert r.headers["x-user-id"] == other["user"]["id"]
        assert web.get("/v1/auth/verify", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_verify_applies_csrf_to_unsafe_cookie_requests_and_never_renews(suite: RunningSuite) -> None:
    email = _account(suite)
    browser = _login(suite, email, FIREFOX, delivery="cookie")
    cookies = browser["cookies"]
    with suite.client(cookies=cookies) as web:
        r = web.get("/v1/auth/verify", headers={"X-Forwarded-Method": "POST"})
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        ok = {"X-Forwarded-Method": "POST", "X-CSRF-Token": cookies[CSRF_COOKIE]}
        assert web.get("/v1/auth/verify", headers=ok).status_code == 200
        r = web.get("/v1/auth/verify", headers={**ok, "Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        r = web.get("/v1/auth/verify", headers={"X-Forwarded-Method": "GET", "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 200  # safe methods are not CSRF-checked
        # Envoy style: the original method on /v1/auth/verify/<path>.
        r = web.post("/v1/auth/verify/api/orders")
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        assert web.post("/v1/auth/verify/api/orders", headers={"X-CSRF-Token": cookies[CSRF_COOKIE]}).status_code == 200
        assert web.get("/v1/auth/verify/api/orders?page=2").status_code == 200
    # Only the refresh cookie left: verify answers 401 and issues nothing.
    with suite.client(cookies={REFRESH_COOKIE: cookies[REFRESH_COOKIE], CSRF_COOKIE: cookies[CSRF_COOKIE]}) as web:
        r = web.get("/v1/auth/verify")
        assert r.status_code == 401
        assert not [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=ey")]
        # ...and the refresh token is still unspent: the app renews through /v1/auth/refresh.
        r = web.post("/v1/auth/refresh", headers={"X-CSRF-Token": cookies[CSRF_COOKIE]})
        assert r.status_code == 200, r.text


def test_verify_refuses_a_session_revoked_at_another_replica(suite: RunningSuite, second_gateway: str) -> None:  # noqa: F811
    email = _account(suite)
    tokens = _login(suite, email, FIREFOX)
    with httpx.Client(base_url=second_gateway, headers=_bearer(tokens), timeout=10) as replica:
        assert replica.get("/v1/auth/verify").status_code == 200
        with suite.client(headers=_bearer(tokens)) as api:
            assert api.delete(f"/v1/sessions/{tokens['session']['id']}").status_code == 204
        r = replica.get("/v1/auth/verify")
        assert r.status_code == 401 and r.json()["code"] == "session_expired"


def test_revocations_survive_a_redis_flush_and_reach_a_new_replica(suite: RunningSuite, tmp_path) -> None:
    import redis

    from bench.revocation import start_replica

    email = _account(suite)
    tokens = _login(suite, email, FIREFOX)
    auth = _bearer(tokens)
    with suite.client(headers=auth) as api:
        assert api.delete(f"/v1/sessions/{tokens['session']['id']}").status_code == 204
    redis.Redis.from_url(suite.redis_url).flushall()  # the accelerator is gone; SQL is the truth
    proc, base = start_replica(suite.env, tmp_path / "gateway-c.log")
    try:
        with httpx.Client(base_url=base, headers=auth, timeout=10) as fresh:
            r = fresh.get("/v1/auth/verify")
            assert r.status_code == 401 and r.json()["code"] == "session_expired"
    finally:
        proc.terminate()
        proc.wait(15)
    with suite.client(headers=auth) as api:  # the running replica kept it in memory
        assert api.get("/v1/auth/me").status_code == 401
    with suite.client() as client:
        r = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 401


def test_verify_counts_toward_the_rate_limit_and_refuses_bad_forwarded_methods(suite: RunningSuite) -> None:
    tokens = _login(suite, _account(suite), FIREFOX)
    with suite.client(headers=_bearer(tokens)) as api:
        for headers in ([("X-Forwarded-Method", "GET"), ("X-Forwarded-Method", "POST")], {"X-Forwarded-Method": "G T"}):
            r = api.get("/v1/auth/verify", headers=headers)
            assert r.status_code == 400 and r.json()["code"] == "malformed_request", r.text
        answers = [api.get("/v1/auth/verify") for _ in range(101)]
    # Without a team: the user's starter budget (100 per rolling minute), as for every request.
    assert [r.status_code for r in answers[:100]] == [200] * 100
    assert answers[0].headers["ratelimit-policy"] == '"user-starter";q=100;w=60'
    last = answers[100]
    assert last.status_code == 429 and last.json()["code"] == "rate_limited"
    assert int(last.headers["retry-after"]) >= 1 and "x-user-id" not in last.headers


def test_concurrent_revocations_of_one_session_all_answer_204(suite: RunningSuite, second_gateway: str) -> None:  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    email = _account(suite)
    keeper, target = _login(suite, email, FIREFOX), _login(suite, email, IPHONE)
    url = f"/v1/sessions/{target['session']['id']}"

    def revoke(base: str) -> int:
        with httpx.Client(base_url=base, headers=_bearer(keeper), timeout=20) as client:
            return client.delete(url).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(revoke, [suite.base_url, second_gateway] * 4))
    assert statuses == [204] * 8
    with suite.client(headers=_bearer(keeper)) as api:
        assert [s["id"] for s in api.get("/v1/sessions").json()["sessions"]] == [keeper["session"]["id"]]


def _grpc_calls(suite: RunningSuite) -> dict[str, float]:
    """gRPC calls handled so far by each service, by method (from their Prometheus endpoints)."""
    from prometheus_client.parser import text_string_to_metric_families

    calls: dict[str, float] = {}
    for name in ("identity", "sessions", "rbac", "audit"):
        text = httpx.get(f"http://127.0.0.1:{suite.env[f'DEELRX_{name.upper()}_METRICS_PORT']}/metrics").text
        for family in text_string_to_metric_families(text):
            if family.name == "deelrx_grpc_requests":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        key = f"{name}.{sample.labels['method']}"
                        calls[key] = calls.get(key, 0) + sample.value
    return calls


def test_verify_makes_no_service_call_per_request_except_the_permission_check(suite: RunningSuite) -> None:
    email = _account(suite)
    _team_member(suite, email, "manager")
    tokens = _login(suite, email, FIREFOX)
    # Periodic work, not per request: JWKS refresh, activity batches, revocation resync.
    periodic = ("GetJwks", "TouchSessions", "ListRecentRevocations")
    with suite.client(headers=_bearer(tokens)) as api:
        assert api.get("/v1/auth/verify").status_code == 200  # warms the role and plan caches
        before = _grpc_calls(suite)
        assert all(api.get("/v1/auth/verify").status_code == 200 for _ in range(40))
        after = _grpc_calls(suite)
        per_request = {
            k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0) and not k.endswith(periodic)
        }
        # At most the plan cache's 30 s expiry may fall inside the window: one call, not forty.
        assert sum(per_request.values()) <= 1, per_request
        assert all(api.get("/v1/auth/verify?permission=reports.read").status_code == 200 for _ in range(10))
        checks = _grpc_calls(suite)
    assert checks.get("rbac.Check", 0) - after.get("rbac.Check", 0) == 10
