"""The Python SDK (sdk/python) against the running suite: both clients sign up, log in, renew
their Bearer tokens by themselves, report problem+json as typed errors, and reach every endpoint
group."""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
import time

import pyotp
import pytest

from deelrx_sdk import (
    AsyncClient,
    Client,
    Forbidden,
    InvalidCredentials,
    InvalidToken,
    SessionExpired,
    Unauthenticated,
    ValidationError,
)
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email

pytestmark = pytest.mark.e2e

VERIFY_LINK = r"/verify-email\?token=([A-Za-z0-9_\-]+)"


def signed_up(suite: RunningSuite, client: Client, name: str = "Ada Lovelace") -> str:
    email = new_email()
    mark = suite.mailbox.mark()
    assert client.auth.signup(email, PASSWORD, name) == {"status": "verification_sent"}
    client.auth.verify_email(suite.mailbox.wait_for(email, VERIFY_LINK, after=mark))
    return email


def test_sync_client_logs_in_renews_and_types_errors(suite: RunningSuite) -> None:
    with Client(suite.base_url) as client:
        with pytest.raises(ValidationError) as weak:
            client.auth.signup(new_email(), "short", "A")
        assert any(e["pointer"] == "/password" for e in weak.value.errors)
        with pytest.raises(InvalidToken):
            client.auth.verify_email("not-a-token-0123456789")
        email = signed_up(suite, client)
        with pytest.raises(InvalidCredentials):
            client.login(email, "wrong password 123")
        client.login(email, PASSWORD)
        assert client.me()["user"]["email"] == email

        # Shortly before expiry the client renews by itself, with one refresh.
        first = client.tokens
        client.tokens = dataclasses.replace(first, expires_at=time.time() + 5)
        assert client.me()["user"]["email"] == email
        assert client.refreshes == 1 and client.tokens.refresh_token != first.refresh_token

        # A second program holding the same session logs out: the next call refreshes once, then says so.
        with Client(suite.base_url) as other:
            other.tokens = client.tokens
            other.logout()
        with pytest.raises((SessionExpired, Unauthenticated)):
            client.me()
        assert client.refreshes == 2 and client.tokens is None


async def test_async_callers_that_need_a_refresh_together_cause_one(suite: RunningSuite) -> None:
    with Client(suite.base_url) as sync:
        email = await asyncio.to_thread(signed_up, suite, sync)
    async with AsyncClient(suite.base_url) as client:
        await client.login(email, PASSWORD)
        client.tokens = dataclasses.replace(client.tokens, expires_at=time.time() - 1)
        answers = await asyncio.gather(*(client.me() for _ in range(6)))
        assert {a["user"]["email"] for a in answers} == {email}
        assert client.refreshes == 1
        await client.logout()
        with pytest.raises(Unauthenticated):
            await client.me()


def test_every_endpoint_group_through_the_sdk(suite: RunningSuite) -> None:
    with Client(suite.base_url) as owner, Client(suite.base_url) as staff:
        owner_email = signed_up(suite, owner, "Olive Owner")
        staff_email = signed_up(suite, staff, "Sam Staff")
        owner.login(owner_email, PASSWORD)
        staff.login(staff_email, PASSWORD)

        # MFA: enroll, confirm, then the login's MFA step with a computed code.
        secret = owner.mfa.enroll_totp()["secret"]
        totp = pyotp.TOTP(secret)
        assert len(owner.mfa.confirm_totp(totp.now())["recovery_codes"]) == 10
        assert owner.mfa.status()["totp_enabled"] is True
        owner.logout()
        owner.login(owner_email, PASSWORD, mfa_code=lambda: totp.at(time.time() + 30))
        assert "otp" in owner.me()["session"]["amr"]

        # Teams, invitations, members, roles, billing, assignments, authz.
        team = owner.teams.create("Pharmacy North")
        tid = team["id"]
        owner.auth.switch_team(tid)
        assert tid in {t["id"] for t in owner.teams.list()["teams"]}
        mark = suite.mailbox.mark()
        owner.invitations.create(tid, staff_email, "staff")
        assert [i["email"] for i in owner.invitations.list(tid)["invitations"]] == [staff_email]
        token = suite.mailbox.wait_for(staff_email, r"/accept-invite\?token=([A-Za-z0-9_\-]+)", after=mark)
        assert staff.invitations.accept(token)["team_id"] == tid
        staff.auth.switch_team(tid)
        staff_id = staff.me()["user"]["id"]
        members = {m["email"]: m["role"] for m in owner.members.list(tid)["members"]}
        assert members == {owner_email: "owner", staff_email: "staff"}
        assert "customers.read_assigned" in owner.roles.get(tid)["roles"]["staff"]
        assert owner.billing.get(tid)["plan"] == "starter"
        with pytest.raises(Forbidden):
            staff.billing.get(tid)
        owner.assignments.assign(tid, "c_42", staff_id)
        assert staff.assignments.customers_of(tid, staff_id)["customer_ids"] == ["c_42"]
        assert staff.authz.check("customers.read_assigned", "customer:c_42")["allowed"] is True
        assert staff.authz.check("customers.read_assigned", "customer:c_99")["allowed"] is False

        # Sessions and audit.
        assert any(s["current"] for s in owner.sessions.list()["sessions"])
        assert "events" in owner.audit.events(tid, limit=10)
        assert "events" in owner.audit.my_activity()
        exported = owner.audit.export(tid, "ndjson")
        assert isinstance(exported, bytes) and b"invitation" in exported

        # The live security stream as an iterator: an invitation made now arrives as an `audit` event.
        seen: queue.Queue[dict] = queue.Queue()

        def listen() -> None:
            for event in owner.security_stream(tid):
                if event["event"] == "audit":
                    seen.put(event)
                    return

        threading.Thread(target=listen, daemon=True).start()
        arrived = None
        for _ in range(5):  # the stream may still be connecting when the first invitation goes out
            owner.invitations.create(tid, new_email(), "staff")
            try:
                arrived = seen.get(timeout=3)
                break
            except queue.Empty:
                continue
        assert arrived is not None and isinstance(arrived["data"], dict)

        assert owner.sessions.revoke_member(tid, staff_id)["revoked"] >= 1
        with pytest.raises((SessionExpired, Unauthenticated)):
            staff.me()
