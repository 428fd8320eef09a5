"""The sign-up hijack through the gateway: an attacker signs up with the victim's address
first; the victim signs up too and clicks the (attacker's) link in their mailbox. No account
may be created with the attacker's password."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email

pytestmark = pytest.mark.e2e

ATTACKER_PASSWORD = "attacker chosen passphrase 9"
LINK_RE = r"/verify-email\?token=([A-Za-z0-9_\-]+)"


def test_a_verification_link_needs_the_sign_up_password_when_the_address_is_contested(suite: RunningSuite) -> None:
    victim = new_email()
    with suite.client() as client:
        mark = suite.mailbox.mark()
        r = client.post("/v1/auth/signup", json={"email": victim, "password": ATTACKER_PASSWORD, "name": "Mallory"})
        assert r.status_code == 201
        link = suite.mailbox.wait_for(victim, LINK_RE, after=mark)
        r = client.post("/v1/auth/signup", json={"email": victim, "password": PASSWORD, "name": "Victim"})
        assert r.status_code == 201

        for body in ({"token": link}, {"token": link, "password": PASSWORD}):
            r = client.post("/v1/auth/verify-email", json=body)
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "validation_error" and r.json()["errors"][0]["pointer"] == "/password"
        r = client.post("/v1/auth/verify-email", json={"token": link, "password": 5})
        assert r.status_code == 422
        # Nothing was created: neither password logs in.
        for password in (ATTACKER_PASSWORD, PASSWORD):
            r = client.post("/v1/auth/login", json={"email": victim, "password": password})
            assert r.status_code in (401, 403) and "session" not in r.json(), r.text
