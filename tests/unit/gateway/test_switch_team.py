"""POST /v1/auth/switch-team through the real ASGI app: membership from rbac, the policy and
timeouts from identity's grant (passed to sessions as they are), nothing decided from team data."""

from __future__ import annotations

from deelrx.identity.v1 import identity_pb2
from deelrx_kit.errors import DomainError
from tests.unit.gateway.asgi_harness import Harness, new_session_id

TEAM = "tm_01bbbbbbbbbbbbbbbbbbbbbbbb"


def _bearer(gateway_app: Harness, sid: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway_app.verifier.mint(sid, 'usr_1')}"}


async def test_the_session_gets_identitys_grant_not_the_teams_raw_settings(gateway_app: Harness) -> None:
    sid = new_session_id()
    gateway_app.rbac.roles[("usr_1", TEAM)] = "manager"
    gateway_app.identity.grant = identity_pb2.SessionGrant(idle_timeout_minutes=20, absolute_timeout_hours=6)
    async with gateway_app.client() as client:
        answer = await client.post("/v1/auth/switch-team", json={"team_id": TEAM}, headers=_bearer(gateway_app, sid))
    assert answer.status_code == 200, answer.text
    (switched,) = gateway_app.sessions.switched
    assert (switched.session_id, switched.team_id) == (sid, TEAM)
    assert (switched.policy.idle_timeout_minutes, switched.policy.absolute_timeout_hours) == (20, 6)
    assert [(g.user_id, g.team_id) for g in gateway_app.identity.grants_asked] == [("usr_1", TEAM)]
    assert gateway_app.identity.active_teams == [TEAM]
    body = answer.json()
    assert body["team"] == {"id": TEAM, "name": "Acme", "plan": "professional", "role": "manager"}
    assert body["token_type"] == "Bearer" and body["refresh_token"] == f"rt_{sid}.y"
    assert answer.headers["cache-control"] == "no-store"


async def test_identitys_refusal_is_the_answer_and_nothing_switches(gateway_app: Harness) -> None:
    sid = new_session_id()
    gateway_app.rbac.roles[("usr_1", TEAM)] = "staff"
    gateway_app.identity.switch_error = DomainError("mfa_enrollment_required", "Enable it first.")
    async with gateway_app.client() as client:
        answer = await client.post("/v1/auth/switch-team", json={"team_id": TEAM}, headers=_bearer(gateway_app, sid))
    assert answer.status_code == 403 and answer.json()["code"] == "mfa_enrollment_required"
    assert gateway_app.sessions.switched == [] and gateway_app.identity.active_teams == []


async def test_a_team_the_caller_is_not_in_is_not_found_before_identity_is_asked(gateway_app: Harness) -> None:
    gateway_app.rbac.default_role = None
    sid = new_session_id()
    async with gateway_app.client() as client:
        answer = await client.post("/v1/auth/switch-team", json={"team_id": TEAM}, headers=_bearer(gateway_app, sid))
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert gateway_app.identity.grants_asked == [] and gateway_app.sessions.switched == []
