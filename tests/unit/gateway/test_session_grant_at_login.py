"""The session a login starts gets the scope and timeouts identity decided, as they are."""

from __future__ import annotations

from deelrx.identity.v1 import identity_pb2
from tests.unit.gateway.asgi_harness import Harness

LOGIN = {"email": "a@example.com", "password": "correct horse battery"}


async def test_an_enrollment_grant_becomes_an_enrollment_only_session(gateway_app: Harness) -> None:
    gateway_app.identity.grant = identity_pb2.SessionGrant(
        scope="mfa_enrollment", idle_timeout_minutes=45, absolute_timeout_hours=8
    )
    async with gateway_app.client() as client:
        answer = await client.post("/v1/auth/login", json=LOGIN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["mfa_enrollment_required"] is True
    (created,) = gateway_app.sessions.created
    assert (created.scope, created.team_id) == ("mfa_enrollment", "tm_1")
    assert (created.policy.idle_timeout_minutes, created.policy.absolute_timeout_hours) == (45, 8)
    assert answer.headers["cache-control"] == "no-store" and answer.headers.get_list("set-cookie")


async def test_a_full_grant_gives_a_full_session(gateway_app: Harness) -> None:
    gateway_app.identity.grant = identity_pb2.SessionGrant(idle_timeout_minutes=30, absolute_timeout_hours=12)
    async with gateway_app.client() as client:
        answer = await client.post("/v1/auth/login", json={**LOGIN, "token_delivery": "body"})
    assert answer.status_code == 200, answer.text
    assert "mfa_enrollment_required" not in answer.json() and answer.json()["token_type"] == "Bearer"
    (created,) = gateway_app.sessions.created
    assert created.scope == "" and created.policy.idle_timeout_minutes == 30
