"""Device cookies through the gateway: someone hammering an account (per-account limit and
lockout) cannot keep its owner out of a browser that signed in before."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify

pytestmark = pytest.mark.e2e


def test_a_browser_that_signed_in_before_is_not_held_out_by_an_attacker(suite: RunningSuite) -> None:
    email = new_email()
    with suite.client() as owner, suite.client() as attacker:
        sign_up_and_verify(suite, owner, email)
        r = owner.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200
        device = next(c for c in r.headers.get_list("set-cookie") if c.startswith("deelrx_device="))
        assert (
            "httponly" in device.lower()
            and "samesite=strict" in device.lower()
            and "max-age=31536000" in device.lower()
        )
        owner.post("/v1/auth/logout", headers={"X-CSRF-Token": owner.cookies["deelrx_csrf"]})
        assert "deelrx_device" in owner.cookies  # survives logout

        # Same address (127.0.0.1) as the owner: the attacker spends the per-account limit and
        # locks the client out.
        answers = [
            attacker.post("/v1/auth/login", json={"email": email, "password": "guess guess guess"}).status_code
            for _ in range(35)
        ]
        assert answers[-1] == 429 and set(answers) <= {401, 429}
        assert attacker.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 429

        r = owner.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert r.json()["user"]["email"] == email


FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


def test_a_sign_in_from_a_new_device_is_mailed_with_device_and_ip(suite: RunningSuite) -> None:
    email = new_email()
    with (
        suite.client(headers={"User-Agent": FIREFOX}) as first,
        suite.client(headers={"User-Agent": CHROME_WINDOWS}) as second,
    ):
        sign_up_and_verify(suite, first, email)
        assert first.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
        mark = suite.mailbox.mark()
        assert second.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
        device = suite.mailbox.wait_for(email, r"Device: (.+)", after=mark)
        assert "Chrome" in device and "Windows" in device
        assert suite.mailbox.wait_for(email, r"IP:\s+(\S+)", after=mark) == "127.0.0.1"
