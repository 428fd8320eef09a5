"""Runs last in tests/security (file order): after every attack and fuzz run above (forged
tokens in headers and cookies, tokens in query strings, random bodies), the log of every process
of the attacked suite holds no token, password, address, hash or link token."""

from __future__ import annotations

import time

import pytest

from tests.e2e.flows import PASSWORD
from tests.e2e.test_zz_logs_carry_no_secrets import ALLOWED, FORBIDDEN_SHAPES
from tests.security.conftest import LiveSuite, bearer, bearer_account

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]


def test_attacked_suite_logged_no_secret(suite: LiveSuite) -> None:
    account = bearer_account(suite)
    with suite.client() as c:
        # One more of each kind of leak bait, then a request whose id marks the end of the run.
        c.get(f"/v1/auth/me?access_token={account.access_token}")
        c.post(f"/v1/auth/refresh?refresh_token={account.refresh_token}")
        c.get("/v1/auth/me", headers=bearer(account.access_token + "x"))
        last = c.get("/v1/auth/me", headers=bearer(account.access_token))
        assert last.status_code == 200
    assert suite.log_path is not None
    request_id = last.headers["x-request-id"]
    text = ""
    for _ in range(100):
        text = suite.log_path.read_text(errors="replace")
        if request_id in text:
            break
        time.sleep(0.1)
    assert request_id in text and "http_request" in text
    used = {
        "password": PASSWORD,
        "secret key": suite.env["DEELRX_SECRET_KEY"],
        "access token": account.access_token,
        "refresh token": account.refresh_token,
        "email": account.email,
    }
    leaked = {name for name, value in used.items() if value in text}
    assert not leaked, f"logs contain: {sorted(leaked)}"
    for shape, pattern in FORBIDDEN_SHAPES.items():
        found = {m.group(0) for m in pattern.finditer(text)} - ALLOWED
        assert not found, f"logs contain a {shape}: {sorted(found)[:3]}"
