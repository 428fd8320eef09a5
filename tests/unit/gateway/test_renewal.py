"""Automatic renewal of a cookie session, through the real ASGI app with a fake sessions service."""

from __future__ import annotations

from deelrx_kit.errors import DomainError
from tests.unit.gateway.asgi_harness import Harness, new_session_id


def _set_cookies(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}


async def test_a_token_near_its_end_is_renewed_and_the_new_cookies_are_delivered(gateway_app: Harness) -> None:
    sid = new_session_id()
    old = gateway_app.verifier.mint(sid, "usr_1", lifetime=100, age=95)  # in its last fifth
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=old)) as client:
        answer = await client.get("/v1/sessions")
    assert answer.status_code == 200
    assert len(gateway_app.sessions.refreshed) == 1
    names = gateway_app.gw.cookies.names
    cookies = _set_cookies(answer)
    assert set(cookies) == {names.session, names.refresh, names.csrf}
    assert old not in cookies[names.session]
    assert answer.headers["cache-control"] == "no-store"


async def test_a_fresh_token_is_not_renewed(gateway_app: Harness) -> None:
    sid = new_session_id()
    access = gateway_app.verifier.mint(sid, "usr_1")
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=access)) as client:
        answer = await client.get("/v1/sessions")
    assert answer.status_code == 200
    assert gateway_app.sessions.refreshed == []
    assert "set-cookie" not in answer.headers
    assert answer.headers["ratelimit-policy"] == '"user-starter";q=100;w=60'


async def test_a_refused_renewal_answers_401_and_clears_the_cookies(gateway_app: Harness) -> None:
    gateway_app.sessions.refresh_error = DomainError("session_expired", "Refresh token reused")
    sid = new_session_id()
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=None)) as client:
        answer = await client.get("/v1/sessions")
    assert answer.status_code == 401 and answer.json()["code"] == "session_expired"
    cleared = _set_cookies(answer)
    names = gateway_app.gw.cookies.names
    assert {names.session, names.refresh, names.csrf} <= set(cleared)
    assert all("max-age=0" in c.lower() for c in cleared.values())


async def test_sessions_down_serves_a_still_valid_token_without_renewing(gateway_app: Harness) -> None:
    gateway_app.sessions.refresh_error = DomainError("unavailable")
    sid = new_session_id()
    access = gateway_app.verifier.mint(sid, "usr_1", lifetime=100, age=95)
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=access)) as client:
        answer = await client.get("/v1/sessions")
    assert answer.status_code == 200
    assert len(gateway_app.sessions.refreshed) == 1
    assert "set-cookie" not in answer.headers


async def test_sessions_down_without_a_valid_token_answers_503(gateway_app: Harness) -> None:
    gateway_app.sessions.refresh_error = DomainError("unavailable")
    sid = new_session_id()
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=None)) as client:
        answer = await client.get("/v1/sessions")
    assert answer.status_code == 503 and answer.json()["code"] == "unavailable"
    assert answer.headers["retry-after"]
    assert "set-cookie" not in answer.headers  # nothing was decided about the session
