"""An answer that started with no limit counted is still counted against the client IP, by a task
the pipeline awaits before the request ends (never by a Redis call inside `send`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse

from gateway.limit_keys import ip_key
from tests.unit.gateway.asgi_harness import Harness


async def _anon_remaining(gateway_app: Harness) -> int:
    gw = gateway_app.gw
    probe = await gw.limiter.hit("anon-ip", ip_key(gateway_app.client_ip), gw.anonymous_limits.per_ip)
    return int(probe.remaining)


async def test_an_answer_without_a_limit_is_counted_once_the_request_ends(gateway_app: Harness) -> None:
    async def unlimited(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    gateway_app.process.app.add_api_route("/v1/test/unlimited", unlimited, methods=["GET"])
    cookies = {gateway_app.gw.cookies.names.session: "not-checked-here"}  # no early limit applies
    before = await _anon_remaining(gateway_app)
    async with gateway_app.client(cookies) as client:
        answer = await client.get("/v1/test/unlimited")
    assert answer.status_code == 200 and answer.text == "ok"
    assert "ratelimit-policy" not in answer.headers  # the answer had started before the count
    # The probe itself takes one, and the request one more.
    assert await _anon_remaining(gateway_app) == before - 2
