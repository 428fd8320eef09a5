"""Every failure answers problem+json with its stable code (docs/api.md), never a bare 500."""

from __future__ import annotations

import grpc
import pytest

from deelrx_kit.errors import DomainError
from tests.unit.gateway.asgi_harness import Harness, new_session_id


def _is_problem(answer, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["code"] == code and body["status"] == status
    assert body["request_id"] == answer.headers["x-request-id"]


async def test_an_unknown_route_is_404_and_counted_before_the_answer(gateway_app: Harness) -> None:
    # A session cookie: no early limit applies, so the count comes from the error mapping.
    async with gateway_app.client({gateway_app.gw.cookies.names.session: "x"}) as client:
        answer = await client.get("/v1/no-such-thing")
    _is_problem(answer, 404, "not_found")
    assert answer.headers["ratelimit-policy"].startswith('"anon-ip"')


async def test_a_wrong_method_is_405_with_allow(gateway_app: Harness) -> None:
    async with gateway_app.client() as client:
        answer = await client.put("/v1/auth/login", json={})
    _is_problem(answer, 405, "method_not_allowed")
    assert "POST" in answer.headers["allow"]


async def test_bodies_that_are_not_json_or_not_valid(gateway_app: Harness) -> None:
    async with gateway_app.client() as client:
        broken = await client.post("/v1/auth/login", content=b"{", headers={"Content-Type": "application/json"})
        text = await client.post("/v1/auth/login", content=b"hi", headers={"Content-Type": "text/plain"})
        invalid = await client.post("/v1/auth/login", json={"email": "not-an-address"})
    _is_problem(broken, 400, "malformed_request")
    _is_problem(text, 415, "unsupported_media_type")
    _is_problem(invalid, 422, "validation_error")
    assert "/password" in {e["pointer"] for e in invalid.json()["errors"]}


async def test_a_body_over_64_kib_is_413_announced_or_streamed(gateway_app: Harness) -> None:
    big = b'{"email": "' + b"a" * 70_000 + b'"}'

    async def chunks():  # type: ignore[no-untyped-def]
        yield big[:40_000]
        yield big[40_000:]

    async with gateway_app.client() as client:
        announced = await client.post("/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
        streamed = await client.post("/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
    _is_problem(announced, 413, "payload_too_large")
    _is_problem(streamed, 413, "payload_too_large")
    assert "content-length" not in streamed.request.headers  # refused while reading, not from the header


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (DomainError("unavailable"), 503, "unavailable"),
        (DomainError("forbidden", "Not yours"), 403, "forbidden"),
        (DomainError("rate_limited", "Slow down", retry_after_seconds=7), 429, "rate_limited"),
        (DomainError("validation_error", "Bad"), 422, "validation_error"),
    ],
)
async def test_a_service_error_keeps_its_code(gateway_app: Harness, error: DomainError, status: int, code: str) -> None:
    gateway_app.sessions.list_error = error
    bearer = {"Authorization": f"Bearer {gateway_app.verifier.mint(new_session_id(), 'usr_1')}"}
    async with gateway_app.client() as client:
        answer = await client.get("/v1/sessions", headers=bearer)
    _is_problem(answer, status, code)
    if code == "unavailable":
        assert answer.headers["retry-after"] == "2"
    if code == "rate_limited":
        assert answer.headers["retry-after"] == "7"


async def test_a_transport_failure_without_detail_is_503_not_500(gateway_app: Harness) -> None:
    async def broken(request: object, timeout: float) -> None:
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")

    gateway_app.sessions.ListSessions = broken  # type: ignore[method-assign,assignment]
    bearer = {"Authorization": f"Bearer {gateway_app.verifier.mint(new_session_id(), 'usr_1')}"}
    async with gateway_app.client() as client:
        answer = await client.get("/v1/sessions", headers=bearer)
    _is_problem(answer, 503, "unavailable")
