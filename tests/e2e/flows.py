"""Steps the end-to-end tests share."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import RunningSuite

PASSWORD = "correct horse battery staple 42"
# Plain-http loopback cookie names (no __Host- prefix).
SESSION_COOKIE, REFRESH_COOKIE, CSRF_COOKIE = "deelrx_session", "deelrx_refresh", "deelrx_csrf"


def new_email() -> str:
    return f"ada.{uuid.uuid4().hex[:10]}@example.com"


def sign_up_and_verify(suite: RunningSuite, client: httpx.Client, email: str, name: str = "Ada Lovelace") -> None:
    mark = suite.mailbox.mark()
    r = client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": name})
    assert r.status_code == 201, r.text
    assert r.json() == {"status": "verification_sent"}
    token = suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
    r = client.post("/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 200, r.text
    assert r.json() == {"email_verified": True}


def account_with_cookies(suite: RunningSuite, client: httpx.Client) -> dict:
    """A verified account logged in on `client` by cookies; returns the login body."""
    email = new_email()
    sign_up_and_verify(suite, client, email)
    r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()
