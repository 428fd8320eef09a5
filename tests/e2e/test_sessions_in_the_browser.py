"""Cookie sessions through the gateway: renewal in place, refresh by cookie with CSRF,
session-bound CSRF tokens, per-user rate limits, revocation across gateway replicas and
the audit service's hash chain of what happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx_kit.grpc_server import channel
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import (
    CSRF_COOKIE,
    PASSWORD,
    REFRESH_COOKIE,
    SESSION_COOKIE,
    account_with_cookies,
    new_email,
    sign_up_and_verify,
)
from tests.suite_launcher import gateway_replica

pytestmark = pytest.mark.e2e


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        found[name] = rest.split(";", 1)[0]
    return found


def test_missing_session_cookie_is_renewed_in_place(suite: RunningSuite) -> None:
    with suite.client() as client:
        account_with_cookies(suite, client)
        refresh, csrf = client.cookies.get(REFRESH_COOKIE), client.cookies.get(CSRF_COOKIE)
    # A browser whose session cookie expired still holds the refresh and csrf cookies.
    with suite.client(cookies={REFRESH_COOKIE: refresh, CSRF_COOKIE: csrf}) as browser:
        r = browser.get("/v1/auth/me")
        assert r.status_code == 200, r.text
        issued = _set_cookies(r)
        assert issued[SESSION_COOKIE] and issued[REFRESH_COOKIE] != refresh
        assert issued[CSRF_COOKIE] == csrf  # bound to the session, which keeps its id
        assert r.headers["cache-control"] == "no-store"


def test_refresh_by_cookie_needs_the_csrf_header(suite: RunningSuite) -> None:
    with suite.client() as client:
        account_with_cookies(suite, client)
        old_refresh = client.cookies.get(REFRESH_COOKIE)
        r = client.post("/v1/auth/refresh")
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        r = client.post("/v1/auth/refresh", headers={"X-CSRF-Token": "forged"})
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        r = client.post("/v1/auth/refresh", headers={"X-CSRF-Token": client.cookies.get(CSRF_COOKIE)})
        assert r.status_code == 200, r.text
        assert "access_token" not in r.json()  # cookie in, cookies out
        assert client.cookies.get(REFRESH_COOKIE) != old_refresh


def test_csrf_token_of_another_session_is_refused(suite: RunningSuite) -> None:
    with suite.client() as alice, suite.client() as mallory:
        account_with_cookies(suite, alice)
        account_with_cookies(suite, mallory)
        # Mallory plants her own csrf value (header and cookie agree) on Alice's session.
        forged = mallory.cookies.get(CSRF_COOKIE)
        cookies = {SESSION_COOKIE: alice.cookies.get(SESSION_COOKIE), CSRF_COOKIE: forged}
    with suite.client(cookies=cookies) as victim:
        r = victim.post("/v1/auth/logout", headers={"X-CSRF-Token": forged})
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        assert victim.get("/v1/auth/me").status_code == 200


def test_requests_without_a_team_are_limited_per_user_at_the_starter_rate(suite: RunningSuite) -> None:
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
        body = client.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"}
        ).json()
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    with suite.client(headers=auth) as api:
        answers = [api.get("/v1/auth/me") for _ in range(101)]
    assert [r.status_code for r in answers[:100]] == [200] * 100
    last = answers[100]
    assert last.status_code == 429 and last.json()["code"] == "rate_limited"
    assert int(last.headers["retry-after"]) >= 1
    assert answers[0].headers["ratelimit-policy"] == '"user-starter";q=100;w=60'
    assert answers[99].headers["ratelimit"].startswith('"user-starter";r=0;')


@pytest.fixture
def second_gateway(suite: RunningSuite, tmp_path: Path) -> Iterator[str]:
    """Another gateway replica on the same services, NATS and Redis, serving (or the test errors)."""
    with gateway_replica(suite, tmp_path) as replica:
        yield replica.url


def test_logout_on_one_replica_is_refused_on_another_at_once(suite: RunningSuite, second_gateway: str) -> None:
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
        tokens = client.post(
            "/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"}
        ).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(base_url=second_gateway, headers=auth, timeout=10) as replica:
        assert replica.get("/v1/auth/me").status_code == 200  # verified and cached there
        with suite.client(headers=auth) as first:
            assert first.post("/v1/auth/logout").status_code == 204
        revoked_at = time.monotonic()
        while replica.get("/v1/auth/me").status_code == 200:
            assert time.monotonic() - revoked_at < 2, "the other replica kept honouring a revoked session"
            time.sleep(0.01)


def test_audit_service_chains_the_users_events(suite: RunningSuite) -> None:
    with suite.client() as client:
        login = account_with_cookies(suite, client)
    user_id = login["user"]["id"]

    async def query() -> tuple[set[str], audit_pb2.VerifyChainResponse]:
        async with channel(suite.env["DEELRX_AUDIT_ADDR"]) as ch:
            stub = audit_pb2_grpc.AuditServiceStub(ch)
            types: set[str] = set()
            for _ in range(100):
                reply = await stub.QueryEvents(audit_pb2.QueryEventsRequest(user_id=user_id))
                types = {e.type for e in reply.events}
                if {"auth.login_succeeded", "session.created"} <= types:
                    break
                await asyncio.sleep(0.1)
            verdict = await stub.VerifyChain(audit_pb2.VerifyChainRequest(user_id=user_id))
            return types, verdict

    types, verdict = asyncio.run(query())
    assert {"auth.login_succeeded", "session.created"} <= types, types
    assert verdict.ok and verdict.events_checked >= 2 and verdict.head_hash


def test_bad_bearer_never_falls_back_to_valid_cookies(suite: RunningSuite) -> None:
    with suite.client() as client:
        account_with_cookies(suite, client)
        assert client.get("/v1/auth/me").status_code == 200
        r = client.get("/v1/auth/me", headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


def test_tokens_renewed_before_an_error_are_still_delivered(suite: RunningSuite) -> None:
    with suite.client() as alice, suite.client() as mallory:
        account_with_cookies(suite, alice)
        account_with_cookies(suite, mallory)
        refresh = alice.cookies.get(REFRESH_COOKIE)
        forged = mallory.cookies.get(CSRF_COOKIE)
    # Session cookie gone, csrf cookie planted: the request is renewed, then refused.
    with suite.client(cookies={REFRESH_COOKIE: refresh, CSRF_COOKIE: forged}) as browser:
        r = browser.post("/v1/auth/logout", headers={"X-CSRF-Token": forged})
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        issued = _set_cookies(r)
        assert issued[REFRESH_COOKIE] != refresh and issued[CSRF_COOKIE] != forged
    # The session lives on with the delivered cookies (the old refresh token is spent).
    with suite.client(cookies=issued) as browser:
        assert browser.get("/v1/auth/me").status_code == 200
        r = browser.post("/v1/auth/logout", headers={"X-CSRF-Token": issued[CSRF_COOKIE]})
        assert r.status_code == 204
