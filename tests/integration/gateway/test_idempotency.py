"""Idempotency-Key on creating POSTs, through the gateway's real app and a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Request

from deelrx_kit.errors import DomainError
from gateway.idempotency import idempotent
from gateway.main import bootstrap
from tests.integration.harness import make_settings


class Things:
    def __init__(self) -> None:
        self.created: list[dict] = []


@pytest.fixture
async def gateway(redis_url: str, tmp_path) -> AsyncIterator[tuple[object, Things]]:
    settings = make_settings(tmp_path, redis_url=redis_url)
    process = bootstrap(settings)
    things = Things()

    @process.app.post("/v1/test/things", status_code=201)
    async def create_thing(body: dict, request: Request) -> dict:
        if body.get("name") == "bad":
            raise DomainError("validation_error", "bad name")
        await asyncio.sleep(0.02)  # long enough for concurrent replays to overlap
        things.created.append(body)
        return {"id": f"thing_{len(things.created)}", **body}

    @process.app.post("/v1/test/opted-in")
    @idempotent
    async def opted_in(body: dict) -> dict:
        things.created.append(body)
        return {"n": len(things.created)}

    @process.app.post("/v1/test/plain")
    async def plain(body: dict) -> dict:
        things.created.append(body)
        return {"n": len(things.created)}

    yield process.app, things
    await process.gw.clients.close()
    await process.gw.redis.aclose()


def _client(app, ip: str = "203.0.113.5") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def test_replayed_key_returns_the_first_answer_and_creates_nothing_new(gateway) -> None:
    app, things = gateway
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with _client(app) as client:
        first = await client.post("/v1/test/things", json={"name": "a"}, headers=key)
        again = await client.post("/v1/test/things", json={"name": "a"}, headers=key)
        other_key = await client.post(
            "/v1/test/things", json={"name": "a"}, headers={"Idempotency-Key": "k2-" + key["Idempotency-Key"]}
        )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"id": "thing_1", "name": "a"}
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == first.headers["content-type"]
    assert other_key.json()["id"] == "thing_2"
    assert len(things.created) == 2


async def test_same_key_with_another_body_answers_409(gateway) -> None:
    app, things = gateway
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with _client(app) as client:
        assert (await client.post("/v1/test/things", json={"name": "a"}, headers=key)).status_code == 201
        clash = await client.post("/v1/test/things", json={"name": "b"}, headers=key)
    assert clash.status_code == 409 and clash.json()["code"] == "conflict"
    assert clash.headers["content-type"] == "application/problem+json"
    assert len(things.created) == 1


async def test_concurrent_requests_with_one_key_create_once(gateway) -> None:
    app, things = gateway
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with _client(app) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/test/things", json={"name": "a"}, headers=key) for _ in range(10))
        )
    assert len(things.created) == 1
    assert sorted({a.status_code for a in answers}) in ([201], [201, 409])
    assert all(a.json()["id"] == "thing_1" for a in answers if a.status_code == 201)


async def test_error_answers_are_not_stored_so_a_retry_runs(gateway) -> None:
    app, things = gateway
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with _client(app) as client:
        assert (await client.post("/v1/test/things", json={"name": "bad"}, headers=key)).status_code == 422
        retry = await client.post("/v1/test/things", json={"name": "bad"}, headers=key)
    assert retry.status_code == 422 and "idempotent-replayed" not in retry.headers
    assert things.created == []


async def test_keys_belong_to_their_caller(gateway) -> None:
    app, things = gateway
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with _client(app, "203.0.113.5") as one, _client(app, "198.51.100.9") as two:
        a = await one.post("/v1/test/things", json={"name": "a"}, headers=key)
        b = await two.post("/v1/test/things", json={"name": "a"}, headers=key)
    assert (a.json()["id"], b.json()["id"]) == ("thing_1", "thing_2")
    assert len(things.created) == 2


async def test_routes_opt_in_with_the_decorator_and_others_ignore_the_key(gateway) -> None:
    app, things = gateway
    key = {"Idempotency-Key": str(uuid.uuid4())}
    async with _client(app) as client:
        opted = [await client.post("/v1/test/opted-in", json={"x": 1}, headers=key) for _ in range(2)]
        plain = [await client.post("/v1/test/plain", json={"x": 1}, headers=key) for _ in range(2)]
    assert opted[0].json() == opted[1].json() == {"n": 1}
    assert [p.json()["n"] for p in plain] == [2, 3]
    assert len(things.created) == 3


@pytest.mark.parametrize("bad_key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_malformed_keys_answer_400(gateway, bad_key: str) -> None:
    app, things = gateway
    async with _client(app) as client:
        r = await client.post(
            "/v1/test/things", json={"name": "a"}, headers=[("Idempotency-Key", bad_key.encode("utf-8"))]
        )
    assert r.status_code == 400 and r.json()["code"] == "malformed_request"
    assert things.created == []


async def test_signup_route_of_the_real_app_is_idempotent(gateway) -> None:
    """Routes of included routers are found too (the real /v1/auth/signup)."""
    from gateway.idempotency import _route_of

    app, _ = gateway
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/auth/signup",
        "app": app,
        "headers": [],
        "query_string": b"",
    }
    route = _route_of(scope)
    assert route is not None and route.path == "/v1/auth/signup"
    assert _route_of({**scope, "path": "/v1/auth/login"}) is None


async def test_oversized_body_with_a_key_answers_413_and_creates_nothing(gateway) -> None:
    app, things = gateway

    async def chunks():  # no Content-Length: the limit applies while the body streams in
        yield b'{"name": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    async with _client(app) as client:
        r = await client.post("/v1/test/things", content=chunks(), headers=headers)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert things.created == []
