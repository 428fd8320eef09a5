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
    grace = {"DEELRX_REFRESH_GRACE_SECONDS": "0"}
    with start_suite(infrastructure, smtp, data_dir, request.param, extra_env=grace) as running:
        yield running


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


# ------------------------------------------------ capabilities that arrive with other branches
def _has(suite: LiveSuite, method: str, path: str) -> bool:
    document = httpx.get(suite.base_url + "/openapi.json").json()
    return method.lower() in document["paths"].get(path, {})


def _team_with_member(suite: LiveSuite, owner, role: str = "staff"):  # type: ignore[no-untyped-def]
    """A team of `owner` and a new verified member with `role` (invited, accepted)."""
    with suite.client() as c:
        r = c.post("/v1/teams", json={"name": "Race Co"}, headers=bearer(owner.access_token))
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        member = bearer_account(suite)
        mark = suite.mailbox.mark()
        r = c.post(
            f"/v1/teams/{tid}/invitations",
            json={"email": member.email, "role": role},
            headers=bearer(owner.access_token),
        )
        assert r.status_code == 201, r.text
        token = suite.mailbox.wait_for(member.email, r"/accept-invite\?token=([A-Za-z0-9_\-]+)", after=mark)
        r = c.post("/v1/invitations/accept", json={"token": token}, headers=bearer(member.access_token))
        assert r.status_code == 200, r.text
    return tid, member


def test_an_invitation_is_accepted_once(race_suite: LiveSuite) -> None:
    if not _has(race_suite, "post", "/v1/invitations/accept"):
        pytest.skip("invitations arrive with the teams work")
    owner = bearer_account(race_suite)
    invitee = bearer_account(race_suite)
    with race_suite.client() as c:
        tid = c.post("/v1/teams", json={"name": "Inv Co"}, headers=bearer(owner.access_token)).json()["id"]
        mark = race_suite.mailbox.mark()
        r = c.post(
            f"/v1/teams/{tid}/invitations",
            json={"email": invitee.email, "role": "staff"},
            headers=bearer(owner.access_token),
        )
        assert r.status_code == 201, r.text
    token = race_suite.mailbox.wait_for(invitee.email, r"/accept-invite\?token=([A-Za-z0-9_\-]+)", after=mark)
    answers = at_once(
        race_suite, "POST", "/v1/invitations/accept", json={"token": token}, headers=bearer(invitee.access_token)
    )
    found = statuses(answers)
    # The invitee's own retries are idempotent (a retry finishes a half-done join), so several
    # answers may be 200 - but all the same one, and the join happens once.
    assert found[200] >= 1, (found, [r.text for r in answers])
    assert len({r.content for r in answers if r.status_code == 200}) == 1
    assert all(r.json()["code"] in ("invalid_token", "conflict") for r in answers if r.status_code != 200)
    with race_suite.client() as c:
        members = c.get(f"/v1/teams/{tid}/members", headers=bearer(owner.access_token)).json()["members"]
    assert sum(1 for m in members if m["user_id"] == invitee.user_id) == 1
    # Anyone else racing for the same token loses, whatever the timing.
    other = bearer_account(race_suite)
    with race_suite.client() as c:
        r = c.post("/v1/invitations/accept", json={"token": token}, headers=bearer(other.access_token))
        assert r.status_code in (400, 403, 409), r.text


def test_the_last_owner_survives_concurrent_demotions(race_suite: LiveSuite) -> None:
    """Two owners demote each other at the same moment: one demotion wins, one owner remains."""
    if not _has(race_suite, "patch", "/v1/teams/{tid}/members/{uid}"):
        pytest.skip("members arrive with the teams work")
    first = bearer_account(race_suite)
    tid, second = _team_with_member(race_suite, first, role="owner")

    async def both() -> list[httpx.Response]:
        async with (
            httpx.AsyncClient(base_url=race_suite.base_url, timeout=30) as a,
            httpx.AsyncClient(base_url=race_suite.base_url, timeout=30) as b,
        ):
            return list(
                await asyncio.gather(
                    a.patch(
                        f"/v1/teams/{tid}/members/{second.user_id}",
                        json={"role": "manager"},
                        headers=bearer(first.access_token),
                    ),
                    b.patch(
                        f"/v1/teams/{tid}/members/{first.user_id}",
                        json={"role": "manager"},
                        headers=bearer(second.access_token),
                    ),
                )
            )

    answers = asyncio.run(both())
    statuses(answers)
    assert sum(1 for r in answers if r.status_code == 200) <= 1, [r.text for r in answers]
    with race_suite.client() as c:
        members = c.get(f"/v1/teams/{tid}/members", headers=bearer(first.access_token))
        if members.status_code != 200:
            members = c.get(f"/v1/teams/{tid}/members", headers=bearer(second.access_token))
        owners = [m for m in members.json()["members"] if m["role"] == "owner"]
    assert len(owners) == 1, owners


def test_a_reset_token_resets_once(race_suite: LiveSuite) -> None:
    if not _has(race_suite, "post", "/v1/auth/password/reset"):
        pytest.skip("password reset arrives with the account-security work")
    account = bearer_account(race_suite)
    with race_suite.client() as c:
        mark = race_suite.mailbox.mark()
        assert c.post("/v1/auth/password/forgot", json={"email": account.email}).status_code == 202
    token = race_suite.mailbox.wait_for(account.email, r"/reset-password\?token=([A-Za-z0-9_\-]+)", after=mark)
    passwords = [f"new race password {i} {uuid.uuid4().hex[:6]}" for i in range(N)]

    async def run() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=race_suite.base_url, timeout=30) for _ in range(N)]
        try:
            return list(
                await asyncio.gather(
                    *(
                        c.post("/v1/auth/password/reset", json={"token": token, "new_password": p})
                        for c, p in zip(clients, passwords, strict=True)
                    )
                )
            )
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    answers = asyncio.run(run())
    found = statuses(answers)
    assert found[204] == 1, (found, [r.text for r in answers])
    winner = passwords[next(i for i, r in enumerate(answers) if r.status_code == 204)]
    with race_suite.client() as c:
        for p in passwords:
            r = c.post("/v1/auth/login", json={"email": account.email, "password": p, "token_delivery": "body"})
            assert (r.status_code == 200) is (p == winner), (p == winner, r.text)


def _mfa_account(suite: LiveSuite):  # type: ignore[no-untyped-def]
    """A verified account with TOTP on: (account, totp secret, recovery codes)."""
    import pyotp

    account = bearer_account(suite)
    with suite.client() as c:
        r = c.post("/v1/mfa/totp/enroll", headers=bearer(account.access_token))
        assert r.status_code == 200, r.text
        secret = r.json()["secret"]
        r = c.post(
            "/v1/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=bearer(account.access_token)
        )
        assert r.status_code == 200, r.text
        return account, secret, r.json()["recovery_codes"]


def _mfa_tokens(suite: LiveSuite, email: str, n: int) -> list[str]:
    tokens = []
    with suite.client() as c:
        for _ in range(n):
            r = c.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
            assert r.status_code == 200 and r.json()["mfa_required"], r.text
            tokens.append(r.json()["mfa_token"])
    return tokens


def _second_steps(suite: LiveSuite, bodies: list[dict]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        clients = [httpx.AsyncClient(base_url=suite.base_url, timeout=30) for _ in bodies]
        try:
            return list(
                await asyncio.gather(
                    *(c.post("/v1/auth/login/mfa", json=b) for c, b in zip(clients, bodies, strict=True))
                )
            )
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    return asyncio.run(run())


def test_a_recovery_code_is_used_once(race_suite: LiveSuite) -> None:
    if not _has(race_suite, "post", "/v1/auth/login/mfa"):
        pytest.skip("MFA arrives with the account-security work")
    account, _secret, codes = _mfa_account(race_suite)
    tokens = _mfa_tokens(race_suite, account.email, N)
    answers = _second_steps(race_suite, [{"mfa_token": t, "recovery_code": codes[0]} for t in tokens])
    found = statuses(answers)
    assert found[200] == 1, (found, [r.text for r in answers])


def test_a_totp_step_is_used_once(race_suite: LiveSuite) -> None:
    if not _has(race_suite, "post", "/v1/auth/login/mfa"):
        pytest.skip("MFA arrives with the account-security work")
    import pyotp

    account, secret, _codes = _mfa_account(race_suite)
    tokens = _mfa_tokens(race_suite, account.email, N)
    # The confirmation used the current step; the next one (accepted within +-1 step) is fresh,
    # so every request races for the same unused code.
    import time

    code = pyotp.TOTP(secret).at(time.time() + 30)
    answers = _second_steps(race_suite, [{"mfa_token": t, "code": code} for t in tokens])
    found = statuses(answers)
    assert found[200] == 1, (found, [r.text for r in answers])
