"""Races with exactly one winner, on SQLite and PostgreSQL: N identical requests released at
once through the gateway, and then a check of the state they left (not just of the answers).

The suite here runs with `DEELRX_REFRESH_GRACE_SECONDS=0`, so a refresh token is strictly
single-use (the grace rules are tested in tests/e2e)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Infra
from tests.e2e.conftest import Mailbox
from tests.e2e.flows import PASSWORD, new_email
from tests.security.conftest import LiveSuite, bearer, bearer_account, start_suite

pytestmark = pytest.mark.e2e

N = 8


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def race_suite(
    request: pytest.FixtureRequest,
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveSuite]:
    data_dir = tmp_path_factory.mktemp(f"races-{request.param}")
    yield from start_suite(
        infrastructure, smtp, data_dir, request.param, extra_env={"DEELRX_REFRESH_GRACE_SECONDS": "0"}
    )


def at_once(suite: LiveSuite, method: str, path: str, n: int = N, **kwargs) -> list[httpx.Response]:
    """`n` copies of one request, each on its own connection, released together."""

    async def run() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=suite.base_url, timeout=30) for _ in range(n)]
        try:
            # Open the connections first so that the requests themselves start together.
            await asyncio.gather(*(c.get("/healthz") for c in clients))
            gate = asyncio.Event()

            async def one(client: httpx.AsyncClient) -> httpx.Response:
                await gate.wait()
                return await client.request(method, path, **kwargs)

            tasks = [asyncio.create_task(one(c)) for c in clients]
            await asyncio.sleep(0)
            gate.set()
            return await asyncio.gather(*tasks)
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    return asyncio.run(run())


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    found = Counter(r.status_code for r in responses)
    assert not any(code >= 500 for code in found), [r.text for r in responses if r.status_code >= 500]
    return found


def test_an_email_token_verifies_once(race_suite: LiveSuite) -> None:
    email = new_email()
    mark = race_suite.mailbox.mark()
    with race_suite.client() as c:
        assert c.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "R"}).status_code == 201
    token = race_suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
    answers = at_once(race_suite, "POST", "/v1/auth/verify-email", json={"token": token})
    found = statuses(answers)
    assert found[200] == 1, found
    assert all(
        r.json()["code"] in ("invalid_token", "validation_error", "conflict") for r in answers if r.status_code != 200
    )
    with race_suite.client() as c:
        r = c.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        assert r.status_code == 200, r.text


def test_a_refresh_token_outside_grace_rotates_once(race_suite: LiveSuite) -> None:
    account = bearer_account(race_suite)
    answers = at_once(race_suite, "POST", "/v1/auth/refresh", json={"refresh_token": account.refresh_token})
    found = statuses(answers)
    assert found[200] == 1, (found, [r.text for r in answers])
    winners = {r.json()["refresh_token"] for r in answers if r.status_code == 200}
    assert len(winners) == 1
    losers = [r for r in answers if r.status_code != 200]
    assert all(r.status_code == 401 for r in losers)
    # The losers presented a spent token: reuse outside grace ends the whole session,
    # so the winner's tokens die with it.
    with race_suite.client() as c:
        again = c.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
        assert again.status_code == 401
        assert c.get("/v1/auth/me", headers=bearer(account.access_token)).status_code == 401


def test_an_idempotency_key_runs_the_request_once(race_suite: LiveSuite) -> None:
    email = new_email()
    key = str(uuid.uuid4())
    mark = race_suite.mailbox.mark()
    answers = at_once(
        race_suite,
        "POST",
        "/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "name": "Idem"},
        headers={"Idempotency-Key": key},
    )
    found = statuses(answers)
    assert set(found) <= {201, 409}, found
    assert found[201] >= 1
    assert {r.content for r in answers if r.status_code == 201} == {b'{"status":"verification_sent"}'}
    assert all(r.json()["code"] == "conflict" for r in answers if r.status_code == 409)
    # Exactly one sign-up exists: its link works without the password, which the product
    # demands as soon as an address has two live sign-ups.
    token = race_suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
    with race_suite.client() as c:
        r = c.post("/v1/auth/verify-email", json={"token": token})
        assert r.status_code == 200, r.text
    assert sum(1 for m in race_suite.mailbox.messages[mark:] if email in (m["To"] or "")) == 1


def test_concurrent_wrong_passwords_never_exceed_the_lockout(race_suite: LiveSuite) -> None:
    """Failures are counted before the hash is checked, so a burst cannot squeeze in more guesses."""
    with race_suite.client() as c:
        email = new_email()
        mark = race_suite.mailbox.mark()
        c.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "L"})
        token = race_suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
        assert c.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    answers = at_once(
        race_suite, "POST", "/v1/auth/login", n=16, json={"email": email, "password": "wrong-" + PASSWORD}
    )
    found = statuses(answers)
    assert found[401] == 10, found  # exactly the 10 allowed failures were judged
    assert found[429] == 6, found
