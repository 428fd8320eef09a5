"""Team `mfa_required` at login: an enrollment-only session until TOTP is confirmed, then a
full session at the next refresh. (Team settings are changed in identity's store directly;
the team endpoints are not part of this test.)"""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from sqlalchemy import update

from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx_kit.db import create_engine
from deelrx_kit.grpc_server import channel
from services.identity.adapters.tables import teams
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify
from tests.e2e.test_account_security import bearer, oathtool_code

pytestmark = pytest.mark.e2e


async def _team_requiring_mfa(suite: RunningSuite, user_id: str) -> str:
    chan = channel(suite.env["DEELRX_IDENTITY_ADDR"])
    try:
        stub = identity_pb2_grpc.IdentityServiceStub(chan)
        team = (await stub.CreateTeam(identity_pb2.CreateTeamRequest(owner_user_id=user_id, name="Pharmacy"))).team
    finally:
        await chan.close()
    engine = create_engine(suite.settings.service_database_url("identity"), "identity")
    try:
        async with engine.begin() as conn:
            await conn.execute(update(teams).where(teams.c.id == team.id).values(mfa_required=True))
    finally:
        await engine.dispose()
    return team.id


def test_mfa_required_team_gives_an_enrollment_only_session_until_totp_is_on(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = new_email()
        sign_up_and_verify(suite, client, email)
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        user_id = r.json()["user"]["id"]
        team_id = asyncio.run(_team_requiring_mfa(suite, user_id))

        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        assert r.status_code == 200, r.text
        restricted = r.json()
        assert restricted["mfa_enrollment_required"] is True
        claims = jwt.decode(restricted["access_token"], options={"verify_signature": False})
        assert claims["scp"] == "mfa_enrollment" and claims["tid"] == team_id

        # Only /v1/mfa*, /v1/auth/me and /v1/auth/logout are reachable.
        assert client.get("/v1/auth/me", headers=bearer(restricted)).status_code == 200
        assert client.get("/v1/mfa", headers=bearer(restricted)).status_code == 200
        r = client.post("/v1/auth/reauthenticate", json={"password": PASSWORD}, headers=bearer(restricted))
        assert r.status_code == 403 and r.json()["code"] == "mfa_enrollment_required"

        r = client.post("/v1/mfa/totp/enroll", headers=bearer(restricted))
        assert r.status_code == 200, r.text
        secret = r.json()["secret"]
        code = oathtool_code(secret, time.time())
        r = client.post("/v1/mfa/totp/confirm", json={"code": code}, headers=bearer(restricted))
        assert r.status_code == 200, r.text

        # The next refresh gives a full session.
        r = client.post("/v1/auth/refresh", json={"refresh_token": restricted["refresh_token"]})
        assert r.status_code == 200, r.text
        full = r.json()
        claims = jwt.decode(full["access_token"], options={"verify_signature": False})
        assert "scp" not in claims and claims["tid"] == team_id
        r = client.post("/v1/auth/reauthenticate", json={"password": PASSWORD}, headers=bearer(full))
        assert r.status_code == 401 and r.json()["code"] == "invalid_mfa_code"  # reachable now; TOTP is on
