"""Account security through the gateway: password reset and change, TOTP with codes from an
independent implementation (`oathtool`), recovery codes, the MFA login step and step-up."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "quiet meadow lantern 1977"
RESET_RE = r"/reset-password\?token=([A-Za-z0-9_\-]+)"


def oathtool_code(secret: str, at: float) -> str:
    """A TOTP code computed by oathtool (not by the project's code) for the time `at`."""
    if shutil.which("oathtool") is None:
        message = "oathtool is not installed (Debian package `oathtool`; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    out = subprocess.run(
        ["oathtool", "--totp", "--base32", "--now", f"@{int(at)}", secret],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.strip()


def wait_for_step(step: int) -> None:
    """Let the server's clock reach TOTP time step `step` (codes are single use per step)."""
    delay = step * 30 - time.time() + 0.2
    if delay > 0:
        time.sleep(delay)


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def login_body(client: httpx.Client, email: str, password: str = PASSWORD) -> dict:
    r = client.post("/v1/auth/login", json={"email": email, "password": password, "token_delivery": "body"})
    assert r.status_code == 200, r.text
    return r.json()


def account(suite: RunningSuite, client: httpx.Client) -> str:
    email = new_email()
    sign_up_and_verify(suite, client, email)
    return email


def enable_totp(client: httpx.Client, tokens: dict) -> tuple[str, list[str], int]:
    """Enroll and confirm with an oathtool code; (secret, recovery codes, step used)."""
    r = client.post("/v1/mfa/totp/enroll", headers=bearer(tokens))
    assert r.status_code == 200, r.text
    enrollment = r.json()
    assert enrollment["otpauth_uri"].startswith("otpauth://totp/")
    assert "issuer=DeelRx%20CRM" in enrollment["otpauth_uri"]
    assert enrollment["qr_svg"].startswith("<svg")
    assert r.headers["cache-control"] == "no-store"
    step = int(time.time()) // 30
    code = oathtool_code(enrollment["secret"], step * 30)
    r = client.post("/v1/mfa/totp/confirm", json={"code": code}, headers=bearer(tokens))
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return enrollment["secret"], codes, step


def test_password_reset_revokes_every_session_and_works_once(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        first, second = login_body(client, email), login_body(client, email)
        mark = suite.mailbox.mark()
        assert client.post("/v1/auth/password/forgot", json={"email": email}).status_code == 202
        token = suite.mailbox.wait_for(email, RESET_RE, after=mark)
        # An unknown address gets the same answer.
        r = client.post("/v1/auth/password/forgot", json={"email": new_email()})
        assert r.status_code == 202 and r.content == b""

        # A refused password does not spend the link.
        r = client.post("/v1/auth/password/reset", json={"token": token, "new_password": "password"})
        assert r.status_code == 422, r.text

        # The same link used twice at once: exactly one success.
        def use(_: int) -> int:
            with suite.client() as c:
                return c.post(
                    "/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
                ).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = sorted(pool.map(use, range(4)))
        assert statuses == [204, 400, 400, 400], statuses

        for tokens in (first, second):
            assert client.get("/v1/auth/me", headers=bearer(tokens)).status_code == 401
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 401
        login_body(client, email, NEW_PASSWORD)
        suite.mailbox.wait_for(email, r"password of your DeelRx account was reset", after=mark)


def test_malformed_and_wrong_reset_tokens_are_clean_4xx(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        mark = suite.mailbox.mark()
        client.post("/v1/auth/password/forgot", json={"email": email})
        old = suite.mailbox.wait_for(email, RESET_RE, after=mark)
        r = client.post("/v1/auth/password/reset", json={"token": old + "x", "new_password": NEW_PASSWORD})
        assert r.status_code == 400 and r.json()["code"] == "invalid_token"
        r = client.post("/v1/auth/password/reset", json={"token": "", "new_password": NEW_PASSWORD})
        assert r.status_code == 422
        r = client.post("/v1/auth/password/reset", json={"token": "é" * 300, "new_password": NEW_PASSWORD})
        assert r.status_code == 400


def test_password_change_keeps_this_session_and_ends_the_others(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        mine, other = login_body(client, email), login_body(client, email)
        r = client.post(
            "/v1/auth/password/change",
            json={"current_password": "wrong password here", "new_password": NEW_PASSWORD},
            headers=bearer(mine),
        )
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
        mark = suite.mailbox.mark()
        r = client.post(
            "/v1/auth/password/change",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(mine),
        )
        assert r.status_code == 204, r.text
        assert client.get("/v1/auth/me", headers=bearer(mine)).status_code == 200
        assert client.get("/v1/auth/me", headers=bearer(other)).status_code == 401
        suite.mailbox.wait_for(email, r"password of your DeelRx account was changed", after=mark)
        login_body(client, email, NEW_PASSWORD)


def test_totp_login_with_oathtool_codes_replay_and_delivery(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        secret, _codes, step = enable_totp(client, login_body(client, email))
        r = client.get("/v1/mfa", headers=bearer(login_body_mfa(client, email, secret, step + 1)))
        assert r.json() == {"totp_enabled": True, "recovery_codes_remaining": 10}

        # The code of the confirmation (and of the login above) cannot be used again.
        for used in (step, step + 1):
            first = login_body(client, email)
            r = client.post(
                "/v1/auth/login/mfa",
                json={"mfa_token": first["mfa_token"], "code": oathtool_code(secret, used * 30)},
            )
            assert r.status_code == 401 and r.json()["code"] == "invalid_mfa_code"

        # Cookie delivery is remembered from the password step.
        wait_for_step(step + 1)
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.json()["mfa_required"] is True and "session" not in r.json()
        r = client.post(
            "/v1/auth/login/mfa",
            json={"mfa_token": r.json()["mfa_token"], "code": oathtool_code(secret, (step + 2) * 30)},
        )
        assert r.status_code == 200, r.text
        assert "access_token" not in r.json() and "deelrx_session" in r.cookies
        assert sorted(r.json()["session"]["amr"]) == ["otp", "pwd"]


def login_body_mfa(client: httpx.Client, email: str, secret: str, step: int) -> dict:
    first = login_body(client, email)
    assert first == {"mfa_required": True, "mfa_token": first["mfa_token"]}
    r = client.post(
        "/v1/auth/login/mfa", json={"mfa_token": first["mfa_token"], "code": oathtool_code(secret, step * 30)}
    )
    assert r.status_code == 200, r.text
    assert "access_token" in r.json()  # body delivery, as the password step asked
    return r.json()


def test_bad_codes_are_clean_4xx_and_the_mfa_token_dies_after_five(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        secret, _codes, step = enable_totp(client, login_body(client, email))
        mfa_token = login_body(client, email)["mfa_token"]
        for junk in ("12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16", ""):
            r = client.post("/v1/auth/login/mfa", json={"mfa_token": mfa_token, "code": junk})
            assert r.status_code == 401, (junk, r.text)
        r = client.post(
            "/v1/auth/login/mfa", json={"mfa_token": mfa_token, "code": oathtool_code(secret, (step + 1) * 30)}
        )
        assert r.status_code == 401, "the token died after 5 wrong codes"
        for body in (
            {"mfa_token": mfa_token},
            {"mfa_token": mfa_token, "code": "1" * 65},
            {"mfa_token": 7, "code": "1"},
        ):
            assert client.post("/v1/auth/login/mfa", json=body).status_code == 422
        r = client.post("/v1/auth/login/mfa", json={"mfa_token": "mfa_" + "A" * 43, "code": "123456"})
        assert r.status_code == 401
        # A fresh token with a spaced code works.
        code = oathtool_code(secret, (step + 1) * 30)
        r = client.post(
            "/v1/auth/login/mfa",
            json={"mfa_token": login_body(client, email)["mfa_token"], "code": f"{code[:3]} {code[3:]}"},
        )
        assert r.status_code == 200, r.text


def test_same_totp_code_twice_at_once_gives_one_session(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        secret, _codes, step = enable_totp(client, login_body(client, email))
        tokens = [login_body(client, email)["mfa_token"] for _ in range(4)]
        code = oathtool_code(secret, (step + 1) * 30)

        def use(token: str) -> int:
            with suite.client() as c:
                return c.post("/v1/auth/login/mfa", json={"mfa_token": token, "code": code}).status_code

        with ThreadPoolExecutor(4) as pool:
            assert sorted(pool.map(use, tokens)) == [200, 401, 401, 401]


def test_recovery_codes_single_use_regeneration_and_step_up(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        secret, codes, step = enable_totp(client, login_body(client, email))

        # One recovery code used twice at once: one success.
        tokens = [login_body(client, email)["mfa_token"] for _ in range(3)]

        def use(token: str) -> httpx.Response:
            with suite.client() as c:
                return c.post("/v1/auth/login/mfa", json={"mfa_token": token, "recovery_code": codes[0].lower()})

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(use, tokens))
        assert sorted(r.status_code for r in answers) == [200, 401, 401]
        session = next(r.json() for r in answers if r.status_code == 200)
        assert sorted(session["session"]["amr"]) == ["pwd", "rec"]
        assert client.get("/v1/mfa", headers=bearer(session)).json()["recovery_codes_remaining"] == 9

        # A recovery-code session is not an `otp` authentication: step-up refuses it.
        code = oathtool_code(secret, (step + 1) * 30)
        r = client.post("/v1/mfa/recovery-codes", json={"code": code}, headers=bearer(session))
        assert r.status_code == 401 and r.json()["code"] == "reauthentication_required"
        r = client.post("/v1/auth/reauthenticate", json={"password": PASSWORD}, headers=bearer(session))
        assert r.status_code == 401 and r.json()["code"] == "invalid_mfa_code"
        r = client.post("/v1/auth/reauthenticate", json={"password": PASSWORD, "code": code}, headers=bearer(session))
        assert r.status_code == 200, r.text
        stepped = r.json()
        assert sorted(stepped["session"]["amr"]) == ["otp", "pwd"]

        wait_for_step(step + 1)
        r = client.post(
            "/v1/mfa/recovery-codes", json={"code": oathtool_code(secret, (step + 2) * 30)}, headers=bearer(stepped)
        )
        assert r.status_code == 200, r.text
        fresh = r.json()["recovery_codes"]
        assert client.get("/v1/mfa", headers=bearer(stepped)).json()["recovery_codes_remaining"] == 10
        # The old set stopped working; the new one works.
        r = client.post(
            "/v1/auth/login/mfa", json={"mfa_token": login_body(client, email)["mfa_token"], "recovery_code": codes[1]}
        )
        assert r.status_code == 401
        r = client.post(
            "/v1/auth/login/mfa", json={"mfa_token": login_body(client, email)["mfa_token"], "recovery_code": fresh[0]}
        )
        assert r.status_code == 200, r.text


def test_step_up_list_needs_a_fresh_otp_authentication(suite: RunningSuite) -> None:
    with suite.client() as client:
        email = account(suite, client)
        tokens = login_body(client, email)
        secret, codes, step = enable_totp(client, tokens)
        # The password-only session of this user now lacks `otp`: every step-up action refuses.
        for method, path, body in (
            ("POST", "/v1/mfa/totp/enroll", None),
            ("DELETE", "/v1/mfa/totp", {"password": PASSWORD, "code": "123456"}),
            ("POST", "/v1/mfa/recovery-codes", {"code": "123456"}),
            ("POST", "/v1/auth/password/change", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        ):
            r = client.request(method, path, json=body, headers=bearer(tokens))
            assert r.status_code == 401 and r.json()["code"] == "reauthentication_required", (path, r.text)
        # Disabling needs the password and a current code, after a step-up.
        mfa = login_body_mfa(client, email, secret, step + 1)
        wait_for_step(step + 1)
        r = client.request(
            "DELETE",
            "/v1/mfa/totp",
            json={"password": "not the password", "code": oathtool_code(secret, (step + 2) * 30)},
            headers=bearer(mfa),
        )
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
        r = client.request(
            "DELETE",
            "/v1/mfa/totp",
            json={"password": PASSWORD, "code": oathtool_code(secret, (step + 2) * 30)},
            headers=bearer(mfa),
        )
        assert r.status_code == 204, r.text
        assert client.get("/v1/mfa", headers=bearer(mfa)).json() == {
            "totp_enabled": False,
            "recovery_codes_remaining": 0,
        }
        assert login_body(client, email)["mfa_required"] is False
        assert codes  # the set died with TOTP
