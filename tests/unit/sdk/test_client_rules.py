"""The SDK's token and retry rules against a scripted HTTP peer (httpx.MockTransport): when it
refreshes, how many refreshes concurrent callers cause, what it retries and how long it waits.
The same clients run against the real suite in tests/e2e/test_python_sdk.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deelrx_sdk import (
    AccountLocked,
    AsyncClient,
    Client,
    InvalidCredentials,
    RateLimited,
    ReauthenticationRequired,
    SessionExpired,
    Tokens,
    Unavailable,
    ValidationError,
)


def problem(status: int, code: str, headers: dict[str, str] | None = None, **extra: object) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "status": status, "detail": code, **extra}, headers=headers or {})


def tokens_body(n: int, expires_in: int = 300) -> dict[str, object]:
    return {"access_token": f"a{n}", "refresh_token": f"r{n}", "token_type": "Bearer", "expires_in": expires_in}


class Peer:
    """Answers /v1/auth/refresh with new tokens (slowly, to let callers overlap) and /v1/auth/me
    only for the newest access token."""

    def __init__(self) -> None:
        self.generation = 1
        self.refresh_calls = 0
        self.lock = threading.Lock()

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth/refresh":
            with self.lock:
                self.refresh_calls += 1
                self.generation += 1
                return httpx.Response(200, json=tokens_body(self.generation))
        if request.headers.get("authorization") != f"Bearer a{self.generation}":
            return problem(401, "unauthenticated")
        return httpx.Response(200, json={"user": {"id": "usr_1"}})


def expired() -> Tokens:
    return Tokens("a1", "r1", time.time() - 1, 300)


def test_refreshes_once_after_unauthenticated_and_retries_the_call() -> None:
    peer = Peer()
    peer.generation = 2  # the server already considers a1 over
    client = Client("http://suite", transport=httpx.MockTransport(peer.answer))
    client.tokens = Tokens("a1", "r1", time.time() + 300, 300)
    assert client.me() == {"user": {"id": "usr_1"}}
    assert peer.refresh_calls == 1 and client.tokens.access_token == "a3"


@pytest.mark.parametrize(
    ("code", "error"),
    [("invalid_credentials", InvalidCredentials), ("reauthentication_required", ReauthenticationRequired)],
)
def test_other_401s_are_never_answered_with_a_refresh(code: str, error: type[Exception]) -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return problem(401, code)

    client = Client("http://suite", transport=httpx.MockTransport(answer))
    client.tokens = Tokens("a1", "r1", time.time() + 300, 300)
    with pytest.raises(error):
        client.mfa.status()
    assert calls == ["/v1/mfa"]


def test_a_failed_refresh_raises_session_expired_and_forgets_the_tokens() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return problem(401, "session_expired")

    client = Client("http://suite", transport=httpx.MockTransport(answer))
    client.tokens = Tokens("a1", "r1", time.time() + 300, 300)
    with pytest.raises(SessionExpired):
        client.me()
    assert client.tokens is None and client.refreshes == 1


def test_tokens_are_refreshed_shortly_before_they_expire() -> None:
    peer = Peer()
    client = Client("http://suite", transport=httpx.MockTransport(peer.answer), refresh_margin_seconds=30)
    client.tokens = Tokens("a1", "r1", time.time() + 20, 300)  # inside the 30 s margin
    peer.generation = 1
    client.me()
    assert peer.refresh_calls == 1


def test_threads_that_need_a_refresh_at_once_cause_one_refresh() -> None:
    peer = Peer()
    client = Client("http://suite", transport=httpx.MockTransport(peer.answer))
    client.tokens = expired()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.me(), range(8)))
    assert all(a == {"user": {"id": "usr_1"}} for a in answers)
    assert peer.refresh_calls == 1


async def test_coroutines_that_need_a_refresh_at_once_cause_one_refresh() -> None:
    peer = Peer()

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # callers overlap while the refresh is in flight
        return peer.answer(request)

    async with AsyncClient("http://suite", transport=httpx.MockTransport(answer)) as client:
        client.tokens = expired()
        answers = await asyncio.gather(*(client.me() for _ in range(8)))
    assert all(a == {"user": {"id": "usr_1"}} for a in answers)
    assert peer.refresh_calls == 1


def test_rate_limited_waits_for_retry_after_then_retries_and_a_lock_does_not() -> None:
    waits: list[float] = []
    answers = iter([problem(429, "rate_limited", {"Retry-After": "2"}), httpx.Response(200, json={"ok": True})])
    client = Client("http://suite", transport=httpx.MockTransport(lambda r: next(answers)), sleep=waits.append)
    assert client.authz.check("customers.read") == {"ok": True}
    assert waits == [2.0]

    locked = Client(
        "http://suite",
        transport=httpx.MockTransport(lambda r: problem(429, "account_locked", {"Retry-After": "900"})),
        sleep=waits.append,
    )
    with pytest.raises(AccountLocked) as caught:
        locked.auth.login_password("a@example.com", "pw")
    assert caught.value.retry_after == 900 and waits == [2.0]
    assert isinstance(caught.value, RateLimited)


@pytest.mark.parametrize(
    ("method", "with_key", "retried"), [("GET", False, True), ("POST", False, False), ("POST", True, True)]
)
def test_503_backs_off_for_idempotent_calls_only(method: str, with_key: bool, retried: bool) -> None:
    calls: list[str] = []
    waits: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return problem(503, "unavailable") if len(calls) == 1 else httpx.Response(200, json={})

    client = Client("http://suite", transport=httpx.MockTransport(answer), sleep=waits.append)
    headers = {"Idempotency-Key": "k-1"} if with_key else {}
    if retried:
        client._call(method, "/v1/teams", headers=headers, auth=False)
        assert len(calls) == 2 and len(waits) == 1 and 0 < waits[0] <= 5
    else:
        with pytest.raises(Unavailable):
            client._call(method, "/v1/teams", headers=headers, auth=False)
        assert len(calls) == 1 and waits == []


def test_problem_json_becomes_a_typed_error_with_its_pointers() -> None:
    answer = problem(422, "validation_error", errors=[{"pointer": "/password", "detail": "too short"}])
    client = Client("http://suite", transport=httpx.MockTransport(lambda r: answer))
    with pytest.raises(ValidationError) as caught:
        client.auth.signup("a@example.com", "short", "A")
    assert caught.value.errors == [{"pointer": "/password", "detail": "too short"}]
    assert caught.value.status == 422 and caught.value.code == "validation_error"


def test_login_with_the_mfa_step_stores_the_tokens_of_the_second_step() -> None:
    sent: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        if request.url.path == "/v1/auth/login":
            return httpx.Response(200, json={"mfa_required": True, "mfa_token": "m1"})
        return httpx.Response(200, json=tokens_body(7))

    client = Client("http://suite", transport=httpx.MockTransport(answer))
    client.login("a@example.com", "pw", mfa_code=lambda: "123456")
    assert sent[0]["token_delivery"] == "body"
    assert sent[1] == {"mfa_token": "m1", "code": "123456"}
    assert client.tokens is not None and client.tokens.access_token == "a7"
