"""Sign-up, email verification and resend through the real gRPC server."""

from __future__ import annotations

import asyncio

from deelrx.identity.v1 import identity_pb2 as pb
from deelrx_kit.errors import DomainError
from tests.integration.harness import AuditTap, domain_error

from .conftest import PASSWORD, Identity, call, ctx, token_of


async def test_signup_verify_then_login(identity: Identity, audit_tap: AuditTap) -> None:
    token = await identity.signup("Grace.Hopper@Example.COM", name="  Grace Hopper ")
    mail = (await identity.mails_to("Grace.Hopper@example.com"))[0]
    assert mail["Subject"] == "Confirm your email address"
    assert f"https://auth.example.test/verify-email?token={token}" in mail.get_body(("plain",)).get_content()

    # No account before the link is used.
    error = await identity.login_error("grace.hopper@example.com", PASSWORD)
    assert error.code == "email_not_verified"

    verified = await call(identity.stub.VerifyEmail, pb.VerifyEmailRequest(context=ctx(), token=token))
    user_id = verified.user_id
    assert user_id.startswith("usr_")

    # The address compares case-insensitively.
    login = await identity.login("GRACE.HOPPER@example.com")
    assert login.user.id == user_id
    assert login.user.email == "Grace.Hopper@example.com"
    assert login.user.name == "Grace Hopper"
    assert login.user.email_verified and not login.user.mfa_enabled
    assert list(login.amr) == ["pwd"] and not login.mfa_required and not login.mfa_token
    assert login.auth_time.ToDatetime().year == 2026
    assert not login.HasField("active_team")

    user = (await call(identity.stub.GetUser, pb.GetUserRequest(user_id=user_id))).user
    assert user.email == "Grace.Hopper@example.com" and user.email_verified

    # The link is single-use.
    again = await domain_error(identity.stub.VerifyEmail(pb.VerifyEmailRequest(context=ctx(), token=token)))
    assert again.code == "invalid_token"

    events = await audit_tap.wait(lambda e: e.actor.user_id == user_id or e.target.id == user_id, 3)
    types = [e.type for e in events]
    assert {"user.signed_up", "user.email_verified", "auth.login_succeeded"} <= set(types)
    for event in events:
        assert event.team_id == "" and event.source == "identity"
        raw = event.SerializeToString()
        assert PASSWORD.encode() not in raw and token.encode() not in raw
    login_event = next(e for e in events if e.type == "auth.login_succeeded")
    assert login_event.actor.ip == "198.51.100.7"
    assert list(login_event.details["amr"]) == ["pwd"]


async def test_signup_answers_the_same_for_existing_accounts_and_sends_a_notice(identity: Identity) -> None:
    await identity.account("taken@example.com", name="First Owner")
    response = await call(
        identity.stub.StartSignup,
        pb.StartSignupRequest(
            context=ctx(), email="TAKEN@example.com", password="another-fine-passphrase", name="Intruder"
        ),
    )
    assert response == pb.StartSignupResponse()
    mails = await identity.mails_to("taken@example.com", 2)
    notice = mails[-1]
    assert notice["Subject"] == "You already have a DeelRx account"
    body = notice.get_body(("plain",)).get_content()
    assert "First Owner" in body and "verify-email" not in body and "token=" not in body

    # The account is unchanged: the new password does not work, the old one does.
    assert (await identity.login_error("taken@example.com", "another-fine-passphrase")).code == "invalid_credentials"
    assert (await identity.login("taken@example.com")).user.name == "First Owner"


async def test_signup_input_is_validated(identity: Identity) -> None:
    cases = [
        ("not-an-email", PASSWORD, "Ann", "/email"),
        ("ann@example.com", "short", "Ann", "/password"),
        ("ann@example.com", "Password123", "Ann", "/password"),
        ("ann@example.com", "ann@example.com2024", "Ann", "/password"),
        ("ann@example.com", PASSWORD, " \t ", "/name"),
    ]
    for address, password, name, pointer in cases:
        error = await domain_error(
            identity.stub.StartSignup(pb.StartSignupRequest(context=ctx(), email=address, password=password, name=name))
        )
        assert error.code == "validation_error" and error.violations[0].pointer == pointer
    # Sentinel: a valid sign-up after them; once its mail is out, one staged before it would be too.
    await identity.signup("sentinel@example.com")
    assert await identity.mails_to("ann@example.com", 0) == []


async def test_the_used_link_decides_name_and_password_and_kills_other_signups(identity: Identity) -> None:
    first = await identity.signup("twice@example.com", "first-choice-passphrase", "First Name")
    identity.clock.advance(seconds=61)  # one verification mail per address per minute
    second = await identity.signup("twice@example.com", "second-choice-passphrase", "Second Name")
    await call(
        identity.stub.VerifyEmail,
        pb.VerifyEmailRequest(context=ctx(), token=second, password="second-choice-passphrase"),
    )
    assert (await domain_error(identity.stub.VerifyEmail(pb.VerifyEmailRequest(token=first)))).code == "invalid_token"
    login = await identity.login("twice@example.com", "second-choice-passphrase")
    assert login.user.name == "Second Name"
    assert (await identity.login_error("twice@example.com", "first-choice-passphrase")).code == "invalid_credentials"


async def test_concurrent_uses_of_one_link_create_one_account(identity: Identity) -> None:
    token = await identity.signup("race@example.com")
    results = await asyncio.gather(
        *(call(identity.stub.VerifyEmail, pb.VerifyEmailRequest(token=token)) for _ in range(6)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, pb.VerifyEmailResponse)]
    losses = [r for r in results if isinstance(r, DomainError)]
    assert len(wins) == 1 and len(losses) == 5
    assert all(e.code == "invalid_token" for e in losses)


async def test_concurrent_links_of_one_address_create_one_account(identity: Identity) -> None:
    tokens = []
    for i in range(3):
        tokens.append(await identity.signup("pair@example.com", name=f"Person {i}"))
        identity.clock.advance(seconds=61)
    results = await asyncio.gather(
        *(call(identity.stub.VerifyEmail, pb.VerifyEmailRequest(token=t, password=PASSWORD)) for t in tokens),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, pb.VerifyEmailResponse)]
    assert len(wins) == 1
    assert all(isinstance(r, DomainError) and r.code == "invalid_token" for r in results if r not in wins)


async def test_expired_and_unknown_links_are_refused(identity: Identity) -> None:
    token = await identity.signup("late@example.com")
    identity.clock.advance(hours=24, seconds=1)
    for bad in (token, "made-up-token", "", "x" * 5000):
        assert (await domain_error(identity.stub.VerifyEmail(pb.VerifyEmailRequest(token=bad)))).code == "invalid_token"


async def test_resend_is_throttled_and_replaces_the_link(identity: Identity) -> None:
    old = await identity.signup("resend@example.com")
    resend = pb.ResendVerificationRequest(context=ctx(), email="Resend@example.com")
    assert await call(identity.stub.ResendVerification, resend) == pb.ResendVerificationResponse()
    await identity.signup("sentinel@example.com")  # a mail staged after the resend (sentinel)
    assert len(await identity.mails_to("resend@example.com", 0)) == 1  # too soon after sign-up

    identity.clock.advance(seconds=61)
    await call(identity.stub.ResendVerification, resend)
    mails = await identity.mails_to("resend@example.com", 2)
    assert len(mails) == 2
    new = token_of(mails[-1])
    assert new != old
    assert (await domain_error(identity.stub.VerifyEmail(pb.VerifyEmailRequest(token=old)))).code == "invalid_token"
    await call(identity.stub.VerifyEmail, pb.VerifyEmailRequest(token=new))

    # Unknown and already-verified addresses get the same empty answer and no mail.
    identity.clock.advance(seconds=61)
    for address in ("resend@example.com", "nobody@example.com"):
        await call(identity.stub.ResendVerification, pb.ResendVerificationRequest(email=address))
    await identity.signup("sentinel@example.com")  # mailed after anything these two staged
    assert await identity.mails_to("nobody@example.com", 0) == []
    assert len(await identity.mails_to("resend@example.com", 0)) == 2


async def test_a_link_never_creates_an_account_with_a_password_the_clicker_does_not_know(identity: Identity) -> None:
    """The sign-up hijack: an attacker signs up with the victim's address (before or after
    the victim); whichever link the victim clicks, the account gets the victim's password."""
    attacker = await identity.signup("target@example.com", "attacker-chosen-passphrase", "Mallory")
    identity.clock.advance(seconds=61)
    victim = await identity.signup("target@example.com", PASSWORD, "Victim")
    for password in ("", PASSWORD):  # the victim clicks the attacker's link, with their own password
        error = await domain_error(identity.stub.VerifyEmail(pb.VerifyEmailRequest(token=attacker, password=password)))
        assert error.code == "validation_error" and error.violations[0].pointer == "/password"
    assert (
        await identity.login_error("target@example.com", "attacker-chosen-passphrase")
    ).code == "invalid_credentials"
    await call(identity.stub.VerifyEmail, pb.VerifyEmailRequest(token=victim, password=PASSWORD))
    assert (await identity.login("target@example.com")).user.name == "Victim"
    assert (
        await identity.login_error("target@example.com", "attacker-chosen-passphrase")
    ).code == "invalid_credentials"


async def test_signups_mail_an_address_at_most_once_a_minute(identity: Identity) -> None:
    await identity.signup("flood@example.com")
    for _ in range(3):
        await call(
            identity.stub.StartSignup,
            pb.StartSignupRequest(context=ctx(), email="flood@example.com", password=PASSWORD, name="Flood"),
        )
    await identity.signup("sentinel@example.com")  # mailed after anything the three staged
    assert len(await identity.mails_to("flood@example.com", 0)) == 1
