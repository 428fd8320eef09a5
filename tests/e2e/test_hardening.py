"""Contract details from the security review, through the whole suite: refresh ignores cookies
when an Authorization header is present, and sign-up honours Idempotency-Key."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import CSRF_COOKIE, PASSWORD, REFRESH_COOKIE, account_with_cookies, new_email

pytestmark = pytest.mark.e2e


def test_refresh_ignores_cookies_when_an_authorization_header_is_present(suite: RunningSuite) -> None:
    with suite.client() as client:
        account_with_cookies(suite, client)
        refresh, csrf = client.cookies.get(REFRESH_COOKIE), client.cookies.get(CSRF_COOKIE)
        r = client.post("/v1/auth/refresh", headers={"X-CSRF-Token": csrf, "Authorization": "Bearer anything"})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        assert "set-cookie" not in r.headers
        # The refresh cookie was not used: it still rotates once, without the header.
        r = client.post("/v1/auth/refresh", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert client.cookies.get(REFRESH_COOKIE) != refresh


def test_signup_replayed_with_its_idempotency_key_sends_one_mail_and_the_same_answer(suite: RunningSuite) -> None:
    email, marker = new_email(), new_email()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"email": email, "password": PASSWORD, "name": "Ada"}
    mark = suite.mailbox.mark()
    with suite.client() as client:
        first = client.post("/v1/auth/signup", json=body, headers=key)
        again = client.post("/v1/auth/signup", json=body, headers=key)
        clash = client.post("/v1/auth/signup", json={**body, "name": "Eve"}, headers=key)
        # A later sign-up's mail is relayed after any mail the replay would have staged.
        assert client.post("/v1/auth/signup", json={**body, "email": marker}).status_code == 201
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"status": "verification_sent"}
    assert again.headers["idempotent-replayed"] == "true"
    assert clash.status_code == 409 and clash.json()["code"] == "conflict"
    suite.mailbox.wait_for(marker, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
    to_email = [m for m in suite.mailbox.messages[mark:] if email in (m["To"] or "")]
    assert len(to_email) == 1
