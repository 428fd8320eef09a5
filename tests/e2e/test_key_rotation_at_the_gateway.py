"""An emergency rotation through the operator command: a gateway stops trusting the withdrawn
key within its JWKS refresh interval (at most a minute; one second here), also for tokens it
had verified and cached, and sessions carry on with renewed tokens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from deploy.local import infra
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify

pytestmark = pytest.mark.e2e


@pytest.fixture
def fast_jwks_gateway(suite: RunningSuite, tmp_path: Path) -> Iterator[str]:
    port = infra.free_port()
    env = {
        **os.environ,
        **suite.env,
        "DEELRX_HTTP_PORT": str(port),
        "DEELRX_ADMIN_PORT": str(infra.free_port()),
        "DEELRX_JWKS_REFRESH_SECONDS": "1",
    }
    log = open(tmp_path / "gateway-fast-jwks.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stdout=log, stderr=log)
    try:
        infra.wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def test_emergency_rotation_is_refused_within_the_refresh_interval(suite: RunningSuite, fast_jwks_gateway: str) -> None:
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
        login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
    tokens = login.json()
    old_kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(base_url=fast_jwks_gateway, timeout=10) as gateway:
        deadline = time.monotonic() + 20
        while gateway.get("/v1/auth/verify", headers=auth).status_code != 200:  # verified and cached
            assert time.monotonic() < deadline
            time.sleep(0.1)
        out = subprocess.run(
            [sys.executable, "-m", "services.sessions.rotate_keys", "--emergency"],
            env={**os.environ, **suite.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"withdrawn: {old_kid}" in out
        rotated_at = time.monotonic()
        while gateway.get("/v1/auth/verify", headers=auth).status_code == 200:
            assert time.monotonic() - rotated_at < 10, "the withdrawn key was still trusted"
            time.sleep(0.05)
        assert gateway.get("/v1/auth/verify", headers=auth).status_code == 401
        assert old_kid not in gateway.get("/.well-known/jwks.json").text
        # Nobody is logged out: the refresh token still works and the new token verifies.
        renewed = httpx.post(f"{suite.base_url}/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert renewed.status_code == 200, renewed.text
        fresh = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
        assert jwt.get_unverified_header(renewed.json()["access_token"])["kid"] != old_kid
        assert gateway.get("/v1/auth/verify", headers=fresh).status_code == 200
    # The suite's own gateway picks the new key up too (by its unknown kid) before other tests run.
    deadline = time.monotonic() + 15
    with suite.client(headers=fresh) as api:
        while api.get("/v1/auth/me").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
