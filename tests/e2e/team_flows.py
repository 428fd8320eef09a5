"""Steps the team end-to-end tests share: Bearer accounts, teams, invitations."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify

INVITE_LINK = r"/accept-invite\?token=([A-Za-z0-9_\-]+)"


@dataclass
class Member:
    email: str
    user_id: str
    client: httpx.Client  # Bearer-authenticated
    invite_token: str = ""  # the invitation this member joined with

    def login_again(self, suite: RunningSuite) -> None:
        self.client.headers["Authorization"] = f"Bearer {login_token(suite, self.email)[0]}"


def login_token(suite: RunningSuite, email: str) -> tuple[str, str]:
    with suite.client() as anon:
        r = anon.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        assert r.status_code == 200, r.text
        return r.json()["access_token"], r.json()["user"]["id"]


def account(suite: RunningSuite) -> Member:
    email = new_email()
    with suite.client() as anon:
        sign_up_and_verify(suite, anon, email)
    token, user_id = login_token(suite, email)
    return Member(email, user_id, suite.client(headers={"Authorization": f"Bearer {token}"}))


def create_team(owner: Member, name: str = "Acme") -> str:
    r = owner.client.post("/v1/teams", json={"name": name})
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "owner" and r.json()["plan"] == "starter"
    return str(r.json()["id"])


def invite(suite: RunningSuite, inviter: Member, team_id: str, email: str, role: str) -> str:
    mark = suite.mailbox.mark()
    r = inviter.client.post(f"/v1/teams/{team_id}/invitations", json={"email": email, "role": role})
    assert r.status_code == 201, r.text
    return suite.mailbox.wait_for(email, INVITE_LINK, after=mark)


def join(suite: RunningSuite, owner: Member, team_id: str, role: str) -> Member:
    member = account(suite)
    token = invite(suite, owner, team_id, member.email, role)
    r = member.client.post("/v1/invitations/accept", json={"token": token})
    assert r.status_code == 200, r.text
    assert r.json() == {"team_id": team_id, "role": role}
    member.invite_token = token
    return member


def switch(member: Member, team_id: str) -> None:
    r = member.client.post("/v1/auth/switch-team", json={"team_id": team_id})
    assert r.status_code == 200, r.text
    member.client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"


def check(member: Member, permission: str, resource: str | None = None) -> bool:
    body = {"permission": permission} | ({"resource": resource} if resource else {})
    r = member.client.post("/v1/authz/check", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["reason"]
    return bool(r.json()["allowed"])
