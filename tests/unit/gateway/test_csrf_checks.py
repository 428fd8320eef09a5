"""The CSRF checks of docs/api.md, through the real ASGI app: origin, echoed header, session binding."""

from __future__ import annotations

from gateway import csrf
from tests.unit.gateway.asgi_harness import Harness, new_session_id


def _csrf_header(gateway_app: Harness, session_id: str) -> dict[str, str]:
    return {"X-CSRF-Token": csrf.token_for(gateway_app.gw.secret, session_id)}


async def test_a_cookie_logout_without_the_header_is_refused_before_any_work(gateway_app: Harness) -> None:
    sid = new_session_id()
    access = gateway_app.verifier.mint(sid, "usr_1")
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=access)) as client:
        answer = await client.post("/v1/auth/logout")
    assert answer.status_code == 403 and answer.json()["code"] == "csrf_failed"
    assert "X-CSRF-Token" in answer.json()["detail"]
    assert gateway_app.sessions.revoked == []


async def test_an_echoed_token_of_another_session_is_refused(gateway_app: Harness) -> None:
    sid, planted = new_session_id(), new_session_id()
    access = gateway_app.verifier.mint(sid, "usr_1")
    cookies = gateway_app.browser_cookies(sid, access=access)
    cookies[gateway_app.gw.cookies.names.csrf] = csrf.token_for(gateway_app.gw.secret, planted)
    async with gateway_app.client(cookies) as client:
        answer = await client.post("/v1/auth/logout", headers=_csrf_header(gateway_app, planted))
    assert answer.status_code == 403 and answer.json()["detail"] == "CSRF token does not belong to this session"
    assert gateway_app.sessions.revoked == []


async def test_a_bound_echoed_token_lets_the_logout_through(gateway_app: Harness) -> None:
    sid = new_session_id()
    access = gateway_app.verifier.mint(sid, "usr_1")
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=access)) as client:
        answer = await client.post("/v1/auth/logout", headers=_csrf_header(gateway_app, sid))
    assert answer.status_code == 204
    assert gateway_app.sessions.revoked == [sid]
    assert all("max-age=0" in c.lower() for c in answer.headers.get_list("set-cookie"))


async def test_a_cross_site_request_is_refused_by_the_pipeline_and_bearer_is_exempt(gateway_app: Harness) -> None:
    sid = new_session_id()
    access = gateway_app.verifier.mint(sid, "usr_1")
    cross_site = {"Origin": "https://evil.example", **_csrf_header(gateway_app, sid)}
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=access)) as client:
        refused = await client.post("/v1/auth/logout", headers=cross_site)
        fetched = await client.post("/v1/auth/logout", headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == fetched.status_code == 403
    assert refused.json()["detail"] == "Cross-site request refused"
    # Counted against the client IP before the answer started: it carries the decision.
    assert refused.headers["ratelimit-policy"].startswith('"anon-ip"')
    bearer = gateway_app.verifier.mint(sid, "usr_1")
    async with gateway_app.client() as client:
        answer = await client.post(
            "/v1/auth/logout", headers={"Origin": "https://evil.example", "Authorization": f"Bearer {bearer}"}
        )
    assert answer.status_code == 204 and gateway_app.sessions.revoked == [sid]


async def test_a_cookie_refresh_checks_the_header_before_calling_sessions(gateway_app: Harness) -> None:
    sid = new_session_id()
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=None)) as client:
        answer = await client.post("/v1/auth/refresh")
    assert answer.status_code == 403 and answer.json()["code"] == "csrf_failed"
    assert gateway_app.sessions.refreshed == []


async def test_a_cookie_refresh_with_a_planted_token_still_delivers_the_rotated_cookies(gateway_app: Harness) -> None:
    sid, planted = new_session_id(), new_session_id()
    cookies = gateway_app.browser_cookies(sid, access=None)
    cookies[gateway_app.gw.cookies.names.csrf] = csrf.token_for(gateway_app.gw.secret, planted)
    async with gateway_app.client(cookies) as client:
        answer = await client.post("/v1/auth/refresh", headers=_csrf_header(gateway_app, planted))
    assert answer.status_code == 403 and answer.json()["detail"] == "CSRF token does not belong to this session"
    assert len(gateway_app.sessions.refreshed) == 1
    # The old refresh token is rotated already: the new ones (and a csrf cookie bound to the session) arrive.
    names = gateway_app.gw.cookies.names
    delivered = {c.split("=", 1)[0]: c for c in answer.headers.get_list("set-cookie")}
    assert set(delivered) == {names.session, names.refresh, names.csrf}
    assert csrf.token_for(gateway_app.gw.secret, sid) in delivered[names.csrf]
