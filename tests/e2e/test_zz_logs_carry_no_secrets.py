"""Runs last in the e2e package (file order): the logs of every process of the suite, captured
in one file over the whole run, carry none of the passwords, tokens, codes, secrets or email
addresses the run used."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import CSRF_COOKIE, PASSWORD, REFRESH_COOKIE, SESSION_COOKIE, new_email, sign_up_and_verify

pytestmark = pytest.mark.e2e

# Shapes of what no log line may hold, whoever's test put it there.
FORBIDDEN_SHAPES = {
    "email address": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
    "refresh token": re.compile(r"\brt_[A-Za-z0-9_-]{20,}"),
    "argon2 hash": re.compile(r"\$argon2(?:id|i|d)\$"),
    "link token": re.compile(r"token=[A-Za-z0-9_-]{16,}"),
}
# The mail sender address is configuration, not personal data.
ALLOWED = {"no-reply@deelrx.local"}


def _wait_for_request_logged(log_file: Path, request_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = log_file.read_text(errors="replace")
        if request_id in text or time.monotonic() > deadline:
            assert request_id in text, "the gateway never logged the last request"
            return text


def test_logs_of_every_process_carry_no_secrets_or_addresses(suite: RunningSuite) -> None:
    used: dict[str, str] = {"password": PASSWORD, "secret key": suite.env["DEELRX_SECRET_KEY"]}
    email = new_email()
    used["email"] = email
    wrong = f"wrong-{uuid.uuid4().hex}"
    used["wrong password"] = wrong
    with suite.client() as client:
        mark = suite.mailbox.mark()
        sign_up_and_verify(suite, client, email)
        used["verification token"] = suite.mailbox.wait_for(
            email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark
        )
        assert client.post("/v1/auth/login", json={"email": email, "password": wrong}).status_code == 401
        unknown = new_email()
        used["unknown email"] = unknown
        assert client.post("/v1/auth/login", json={"email": unknown, "password": wrong}).status_code == 401
        # Tokens in the body, then in cookies; a refresh of each; a logout.
        body = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        tokens = body.json()
        used["access token"], used["refresh token"] = tokens["access_token"], tokens["refresh_token"]
        renewed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        used["renewed refresh token"] = renewed["refresh_token"]
        assert (
            client.get("/v1/auth/me", headers={"Authorization": f"Bearer {renewed['access_token']}"}).status_code == 200
        )
        assert client.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
        used["session cookie"] = client.cookies.get(SESSION_COOKIE)
        used["refresh cookie"] = client.cookies.get(REFRESH_COOKIE)
        used["csrf token"] = client.cookies.get(CSRF_COOKIE)
        assert client.post("/v1/auth/resend-nothing", json={"email": email}).status_code in (404, 405)
        last = client.post("/v1/auth/logout", headers={"X-CSRF-Token": used["csrf token"]})
        assert last.status_code == 204
    log_file = suite.settings.data_dir / "suite.log"
    text = _wait_for_request_logged(log_file, last.headers["x-request-id"])
    assert "http_request" in text and "session_created" in text  # the log is the suite's, and full
    leaked = {name for name, value in used.items() if value and value in text}
    assert not leaked, f"logs contain: {sorted(leaked)}"
    for shape, pattern in FORBIDDEN_SHAPES.items():
        found = {m.group(0) for m in pattern.finditer(text)} - ALLOWED
        assert not found, f"logs contain a {shape}: {sorted(found)[:3]}"
