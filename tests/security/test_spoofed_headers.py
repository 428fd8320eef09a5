"""Identity and network headers that a client could invent are never believed: the forward-auth
identity headers are stripped on the way in, and `X-Forwarded-For` counts only from a trusted
proxy (none by default), so lockouts cannot be dodged by rotating it."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.flows import PASSWORD
from tests.security.conftest import LiveSuite, bearer, bearer_account, verified_email

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]

IDENTITY_HEADERS = ("X-User-Id", "X-Team-Id", "X-Session-Id", "X-Role")


def test_identity_headers_do_not_authenticate_or_change_the_caller(suite: LiveSuite) -> None:
    victim = bearer_account(suite)
    attacker = bearer_account(suite)
    spoofed = {
        "X-User-Id": victim.user_id,
        "X-Session-Id": victim.session_id,
        "X-Team-Id": "tm_victim",
        "X-Role": "owner",
        "X-Forwarded-User": victim.email,
        "X-Remote-User": victim.user_id,
    }
    with suite.client() as c:
        r = c.get("/v1/auth/me", headers=spoofed)
        assert r.status_code == 401, r.text
        r = c.get("/v1/auth/me", headers={**spoofed, **bearer(attacker.access_token)})
        assert r.status_code == 200
        body = r.json()
        assert body["user"]["id"] == attacker.user_id and body["session"]["id"] == attacker.session_id
        assert body["team"] is None
        # Lower/upper case and repeated headers make no difference.
        repeated = [(name.lower(), victim.user_id) for name in IDENTITY_HEADERS] + [("X-USER-ID", victim.user_id)]
        r = c.get("/v1/auth/me", headers=[*repeated, ("Authorization", f"Bearer {attacker.access_token}")])
        assert r.json()["user"]["id"] == attacker.user_id
        # A logout with the victim's ids in headers ends the attacker's own session only.
        r = c.post("/v1/auth/logout", headers={**spoofed, **bearer(attacker.access_token)})
        assert r.status_code == 204
        assert c.get("/v1/auth/me", headers=bearer(victim.access_token)).status_code == 200
        assert c.get("/v1/auth/me", headers=bearer(attacker.access_token)).status_code == 401


def test_rotating_x_forwarded_for_does_not_dodge_the_lockout(suite: LiveSuite) -> None:
    """Without DEELRX_TRUSTED_PROXIES the client is the socket peer: ten failures from one
    socket address lock the account for it, whatever X-Forwarded-For / X-Real-IP / Forwarded say."""
    with suite.client() as c:
        email = verified_email(suite, c)
        for attempt in range(10):
            fake = f"203.0.113.{attempt + 1}"
            r = c.post(
                "/v1/auth/login",
                json={"email": email, "password": PASSWORD + "-wrong"},
                headers={"X-Forwarded-For": fake, "X-Real-IP": fake, "Forwarded": f"for={fake}"},
            )
            assert r.status_code == 401, r.text
        fake = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
        r = c.post(
            "/v1/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"X-Forwarded-For": fake, "X-Real-IP": fake, "Forwarded": f"for={fake}"},
        )
        assert r.status_code == 429, r.text
        assert r.json()["code"] == "account_locked"
        assert int(r.headers["retry-after"]) > 0
