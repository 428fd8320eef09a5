"""A revocation the NATS feed has not brought: the gateway reads it from Redis (real Redis here)."""

from __future__ import annotations

from tests.unit.gateway.asgi_harness import Harness, new_session_id


async def test_a_revocation_only_in_redis_ends_a_cookie_session_and_clears_its_cookies(gateway_app: Harness) -> None:
    assert not gateway_app.gw.revocations.feed_healthy
    sid = new_session_id()
    access = gateway_app.verifier.mint(sid, "usr_1")
    async with gateway_app.client(gateway_app.browser_cookies(sid, access=access)) as client:
        before = await client.get("/v1/sessions")
        await gateway_app.revoke_in_redis(sid)
        after = await client.get("/v1/sessions")
    assert before.status_code == 200
    assert after.status_code == 401 and after.json()["code"] == "session_expired"
    assert after.headers.get_list("set-cookie") and all(
        "max-age=0" in c.lower() for c in after.headers.get_list("set-cookie")
    )


async def test_a_revoked_bearer_session_is_refused_without_touching_cookies(gateway_app: Harness) -> None:
    sid = new_session_id()
    bearer = {"Authorization": f"Bearer {gateway_app.verifier.mint(sid, 'usr_1')}"}
    await gateway_app.revoke_in_redis(sid)
    async with gateway_app.client() as client:
        answer = await client.get("/v1/sessions", headers=bearer)
    assert answer.status_code == 401 and answer.json()["code"] == "session_expired"
    assert "set-cookie" not in answer.headers


async def test_a_revocation_known_in_memory_needs_no_redis_marker(gateway_app: Harness) -> None:
    sid, other = new_session_id(), new_session_id()
    gateway_app.gw.revocations.add([sid])
    tokens = [gateway_app.verifier.mint(s, "usr_1") for s in (sid, other)]
    async with gateway_app.client() as client:
        refused, served = [await client.get("/v1/sessions", headers={"Authorization": f"Bearer {t}"}) for t in tokens]
    assert refused.status_code == 401 and served.status_code == 200
