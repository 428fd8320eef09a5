"""Cross-service writes finish after an outage between their two steps: an accepted invitation
whose membership step failed (rbac down), and a removal or a password reset whose session
revocation failed (sessions down). A retry, or the durable event of rbac or identity, completes
the job; nothing is applied twice."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD
from tests.e2e.team_flows import account, create_team, invite, switch

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def stopped(suite: RunningSuite, name: str) -> Iterator[None]:
    """Stop one service process of the suite (started by the fixture) and start it again."""
    launcher = suite.launcher
    assert launcher is not None
    proc = launcher.services[name]
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    try:
        yield
    finally:
        launcher.services[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=launcher.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        launcher.wait_healthy(timeout=60)
        # The gateway's own channel reconnects with a backoff (up to 2 s): until its readiness,
        # which calls through that channel, says so, a request may still get 503, and the next
        # test of this suite with it.
        deadline = time.monotonic() + 30
        while httpx.get(f"{suite.admin_url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not reach the restarted service"
            time.sleep(0.2)


def _until_not_unavailable(send, timeout: float = 30.0) -> httpx.Response:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        r = send()
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_invitation_accepted_while_rbac_is_down_joins_on_retry(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    invitee = account(suite)
    token = invite(suite, owner, team_id, invitee.email, "manager")
    with stopped(suite, "rbac"):
        r = invitee.client.post("/v1/invitations/accept", json={"token": token})
        assert r.status_code == 503 and r.json()["code"] == "unavailable", r.text
    # The invitation is used (identity's step happened), but the same user may finish the job.
    r = _until_not_unavailable(lambda: invitee.client.post("/v1/invitations/accept", json={"token": token}))
    assert r.status_code == 200 and r.json() == {"team_id": team_id, "role": "manager"}, r.text
    r = invitee.client.post("/v1/invitations/accept", json={"token": token})
    assert r.status_code == 200  # replays change nothing
    members = owner.client.get(f"/v1/teams/{team_id}/members").json()["members"]
    assert sorted((m["user_id"], m["role"]) for m in members) == sorted(
        [(owner.user_id, "owner"), (invitee.user_id, "manager")]
    )
    stranger = account(suite)
    r = stranger.client.post("/v1/invitations/accept", json={"token": token})
    assert r.status_code in (400, 403)


def test_removal_while_sessions_is_down_revokes_without_a_retry(suite: RunningSuite) -> None:
    owner = account(suite)
    team_id = create_team(owner)
    staff = account(suite)
    token = invite(suite, owner, team_id, staff.email, "staff")
    assert staff.client.post("/v1/invitations/accept", json={"token": token}).status_code == 200
    switch(staff, team_id)
    assert staff.client.get("/v1/auth/me").status_code == 200
    with stopped(suite, "sessions"):
        r = owner.client.delete(f"/v1/teams/{team_id}/members/{staff.user_id}")
        assert r.status_code == 503, r.text
    # Nobody retries: sessions, back, revokes from rbac's durable `member.removed` event.
    deadline = time.monotonic() + 30
    while (r := staff.client.get("/v1/auth/me")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert r.status_code == 401 and r.json()["code"] == "session_expired", r.text
    r = _until_not_unavailable(lambda: owner.client.delete(f"/v1/teams/{team_id}/members/{staff.user_id}"))
    assert r.status_code == 404  # already removed; a retry changes nothing


RESET_LINK = r"/reset-password\?token=([A-Za-z0-9_\-]+)"
NEW_PASSWORD = "quiet meadow lantern 1977"


def _refused_within(client: httpx.Client, timeout: float = 30.0) -> httpx.Response:
    """/v1/auth/me polled until it refuses the session; a 429 (the polling itself) and a 503 (the
    gateway's channel to the restarted service still reconnecting) are no answer."""
    deadline = time.monotonic() + timeout
    while (r := client.get("/v1/auth/me")).status_code in (200, 429, 503) and time.monotonic() < deadline:
        time.sleep(0.5)
    return r


def test_password_reset_while_sessions_is_down_revokes_without_a_retry(suite: RunningSuite) -> None:
    victim = account(suite)  # the session a thief holds
    assert victim.client.get("/v1/auth/me").status_code == 200
    mark = suite.mailbox.mark()
    with suite.client() as anon:
        assert anon.post("/v1/auth/password/forgot", json={"email": victim.email}).status_code == 202
        token = suite.mailbox.wait_for(victim.email, RESET_LINK, after=mark)
        with stopped(suite, "sessions"):
            r = anon.post("/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD})
            assert r.status_code == 503, r.text  # the password is set; the revocation failed
    # Nobody retries: sessions, back, revokes from identity's durable `password.reset` event.
    r = _refused_within(victim.client)
    assert r.status_code == 401 and r.json()["code"] == "session_expired", r.text
    with suite.client() as owner:
        r = owner.post("/v1/auth/login", json={"email": victim.email, "password": PASSWORD})
        assert r.status_code == 401  # the old password is gone
        body = {"email": victim.email, "password": NEW_PASSWORD, "token_delivery": "body"}
        # The gateway's channel to sessions may still be backing off from the outage.
        r = _until_not_unavailable(lambda: owner.post("/v1/auth/login", json=body))
        assert r.status_code == 200, r.text
        me = owner.get("/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert me.status_code == 200  # a login after the reset lives
