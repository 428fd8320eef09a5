"""Identity's automatic responses to security alerts, through its gRPC API on SQLite and
PostgreSQL with a frozen clock: a hold answers like the lockout and ends by itself; a demanded
second factor is asked at the next login (a mailed code without TOTP, TOTP with it) and clears
once passed; owners get one notice per alert, without secrets; each is audited once."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from deelrx.identity.v1 import identity_pb2 as pb
from deelrx_kit.audit_events import keyed_hash
from deelrx_kit.db import create_engine
from deelrx_kit.ids import new_id
from deelrx_kit.timestamps import to_timestamp
from services.identity.adapters.account_holds import SqlAccountHoldStore
from services.identity.domain import totp
from tests.integration.harness import AuditTap, domain_error

from .conftest import PASSWORD, Identity, call, ctx
from .test_account_security import enable_totp, forgot, reset, reset_token

CODE_RE = re.compile(r"^\s+(\d{6})$", re.MULTILINE)


def _lock(identity: Identity, alert_id: str, minutes: int = 15, **account: str) -> pb.LockAccountRequest:
    until = identity.clock.now() + timedelta(minutes=minutes)
    return pb.LockAccountRequest(
        context=ctx(), alert_id=alert_id, until=to_timestamp(until), reason="security:brute_force", **account
    )


async def _events(tap: AuditTap, type_: str, alert_id: str, count: int) -> list[Any]:
    return await tap.wait(lambda e: e.type == type_ and e.details["alert_id"] == alert_id, count, timeout=5)


async def test_a_hold_answers_account_locked_and_ends_by_itself(identity: Identity, audit_tap: AuditTap) -> None:
    user_id = await identity.account("held@example.com")
    alert_id = new_id("alr")
    first = await call(identity.stub.LockAccount, _lock(identity, alert_id, user_id=user_id))
    again = await call(identity.stub.LockAccount, _lock(identity, alert_id, user_id=user_id))
    assert first.applied and not again.applied  # a redelivered alert locks once

    error = await identity.login_error("held@example.com", PASSWORD)  # the right password
    assert error.code == "account_locked" and 14 * 60 < error.retry_after_seconds <= 15 * 60
    identity.clock.advance(minutes=14)
    assert (await identity.login_error("held@example.com", PASSWORD, ip="192.0.2.1")).code == "account_locked"
    identity.clock.advance(minutes=1, seconds=1)
    assert (await identity.login("held@example.com")).user.id == user_id

    held_mails = [m for m in await identity.mails_to("held@example.com", 2) if "on hold" in str(m["Subject"])]
    assert len(held_mails) == 1
    [event] = await _events(audit_tap, "auth.account_locked", alert_id, 1)
    assert (event.target.type, event.target.id) == ("user", user_id)
    assert event.details["reason"] == "security:brute_force" and event.details["scope"] == "hold"


async def test_a_hold_on_an_unknown_address_answers_like_one_on_an_account(identity: Identity) -> None:
    subject = keyed_hash(identity.settings.secret(), "nobody@example.com")
    await call(identity.stub.LockAccount, _lock(identity, new_id("alr"), subject_hash=subject))
    assert (await identity.login_error("nobody@example.com", PASSWORD)).code == "account_locked"
    assert (await identity.login_error("other-nobody@example.com", PASSWORD)).code == "invalid_credentials"


async def test_a_password_reset_ends_a_hold(identity: Identity) -> None:
    user_id = await identity.account("reset-held@example.com")
    await call(identity.stub.LockAccount, _lock(identity, new_id("alr"), user_id=user_id))
    await forgot(identity, "reset-held@example.com")
    await reset(identity, await reset_token(identity, "reset-held@example.com", 3), PASSWORD + "-new")
    assert (await identity.login("reset-held@example.com", PASSWORD + "-new")).user.id == user_id


async def test_bad_response_requests_are_clean_4xx(identity: Identity) -> None:
    user_id = await identity.account("bad-requests@example.com")
    alert_id = new_id("alr")
    bad = [
        (identity.stub.LockAccount, _lock(identity, alert_id)),  # no account
        (identity.stub.LockAccount, _lock(identity, alert_id, user_id=user_id, subject_hash="hmac-sha256:00")),
        (identity.stub.LockAccount, _lock(identity, "evt_nope", user_id=user_id)),
        (identity.stub.LockAccount, _lock(identity, alert_id, minutes=-1, user_id=user_id)),
        (identity.stub.LockAccount, _lock(identity, alert_id, minutes=60 * 24 * 30, user_id=user_id)),
        (identity.stub.LockAccount, _lock(identity, alert_id, subject_hash="not-a-hash")),
        (identity.stub.RequireMfa, pb.RequireMfaRequest(alert_id=alert_id, user_id=user_id, reason="")),
        (
            identity.stub.NotifyTeamOwners,
            pb.NotifyTeamOwnersRequest(alert_id=alert_id, team_id="nope", rule="brute_force"),
        ),
        (
            identity.stub.NotifyTeamOwners,
            pb.NotifyTeamOwnersRequest(alert_id=alert_id, team_id=new_id("tm"), rule="no_such_rule"),
        ),
    ]
    for method, request in bad:
        assert (await domain_error(method(request))).code == "validation_error", request
    missing = _lock(identity, alert_id, user_id=new_id("usr"))
    assert (await domain_error(identity.stub.LockAccount(missing))).code == "not_found"
    # Nothing was applied by the refused requests.
    assert (await identity.login("bad-requests@example.com")).user.id == user_id


async def test_require_mfa_without_totp_mails_a_code_and_clears_after(identity: Identity, audit_tap: AuditTap) -> None:
    user_id = await identity.account("step@example.com")
    alert_id = new_id("alr")
    request = pb.RequireMfaRequest(context=ctx(), alert_id=alert_id, user_id=user_id, reason="security:new_device")
    assert (await call(identity.stub.RequireMfa, request)).applied
    assert not (await call(identity.stub.RequireMfa, request)).applied

    first = await identity.login("step@example.com")
    assert first.mfa_required and first.mfa_token and not first.HasField("active_team")
    [mail] = [m for m in await identity.mails_to("step@example.com", 2) if "sign-in code" in str(m["Subject"])]
    body = mail.get_body(("plain",)).get_content()
    match = CODE_RE.search(body)
    assert match, body
    code = match.group(1)
    wrong = "000000" if code != "000000" else "111111"
    error = await domain_error(
        identity.stub.VerifyMfa(pb.VerifyMfaRequest(context=ctx(), mfa_token=first.mfa_token, code=wrong))
    )
    assert error.code == "invalid_mfa_code"
    done = await call(identity.stub.VerifyMfa, pb.VerifyMfaRequest(context=ctx(), mfa_token=first.mfa_token, code=code))
    assert done.user.id == user_id and list(done.amr) == ["pwd", "otp"]
    # Single use, and the demand is met: the next login is a plain password login again.
    again = await domain_error(
        identity.stub.VerifyMfa(pb.VerifyMfaRequest(context=ctx(), mfa_token=first.mfa_token, code=code))
    )
    assert again.code == "invalid_mfa_code"
    assert not (await identity.login("step@example.com")).mfa_required
    [event] = await _events(audit_tap, "auth.mfa_step_required", alert_id, 1)
    assert (event.target.type, event.target.id) == ("user", user_id)


async def test_a_mailed_code_expires_with_its_challenge(identity: Identity) -> None:
    user_id = await identity.account("slow@example.com")
    await call(identity.stub.RequireMfa, pb.RequireMfaRequest(alert_id=new_id("alr"), user_id=user_id, reason="x"))
    first = await identity.login("slow@example.com")
    [mail] = [m for m in await identity.mails_to("slow@example.com", 2) if "sign-in code" in str(m["Subject"])]
    match = CODE_RE.search(mail.get_body(("plain",)).get_content())
    assert match
    identity.clock.advance(minutes=5, seconds=1)
    request = pb.VerifyMfaRequest(context=ctx(), mfa_token=first.mfa_token, code=match.group(1))
    assert (await domain_error(identity.stub.VerifyMfa(request))).code == "invalid_mfa_code"
    assert (await identity.login("slow@example.com")).mfa_required  # still demanded


async def test_require_mfa_with_totp_asks_totp_and_clears_after(identity: Identity) -> None:
    user_id = await identity.account("totp-step@example.com")
    secret, _ = await enable_totp(identity, user_id)
    await call(identity.stub.RequireMfa, pb.RequireMfaRequest(alert_id=new_id("alr"), user_id=user_id, reason="x"))
    first = await identity.login("totp-step@example.com")
    assert first.mfa_required
    identity.clock.advance(seconds=31)  # the enrolment's step is spent
    code = totp.code_at(secret, totp.time_step(identity.clock.now()))
    await call(identity.stub.VerifyMfa, pb.VerifyMfaRequest(context=ctx(), mfa_token=first.mfa_token, code=code))
    mails = await identity.mails_to("totp-step@example.com", 1)
    assert not [m for m in mails if "sign-in code" in str(m["Subject"])]  # TOTP users get no mailed code
    engine = create_engine(identity.settings.database_url, "identity")
    try:
        async with engine.connect() as conn:
            hold = await SqlAccountHoldStore().get(conn, f"user:{user_id}")  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert hold is not None and not hold.mfa_required  # the demand was met by the TOTP step


async def test_owners_get_one_notice_per_alert_without_secrets(identity: Identity, audit_tap: AuditTap) -> None:
    owner = await identity.account("owner@example.com", name="Olive Owner")
    team = await call(identity.stub.CreateTeam, pb.CreateTeamRequest(context=ctx(), owner_user_id=owner, name="Acme"))
    alert_id = new_id("alr")
    request = pb.NotifyTeamOwnersRequest(
        context=ctx(),
        alert_id=alert_id,
        team_id=team.team.id,
        owner_user_ids=[owner, new_id("usr")],  # an id identity does not know is skipped
        rule="brute_force",
        severity="high",
        alert_time=to_timestamp(identity.clock.now()),
    )
    assert (await call(identity.stub.NotifyTeamOwners, request)).mailed == 1
    assert (await call(identity.stub.NotifyTeamOwners, request)).mailed == 0
    notices = [m for m in await identity.mails_to("owner@example.com", 2) if "security alert" in str(m["Subject"])]
    assert len(notices) == 1
    body = notices[0].get_body(("plain",)).get_content()
    assert "Acme" in body and "brute_force" in body and "high" in body and "/audit" in body
    for secret in (PASSWORD, identity.settings.secret_key.get_secret_value(), "token=", "hmac-sha256"):
        assert secret not in body
    [event] = await _events(audit_tap, "security.owners_notified", alert_id, 1)
    assert event.team_id == team.team.id and event.details["owners_mailed"] == 1
