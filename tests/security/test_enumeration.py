"""User enumeration, judged by the work done rather than a stopwatch: for known, pending and
unknown addresses the identity service answers alike and computes the same number of password
hashes (the one costly step a response time could reveal). Mails differ only in what the owner
of the mailbox receives, and are sent by the relay after the answer, never on the request path.

Runs the real identity service in-process (real database, real NATS) with argon2-cffi's
`hash` and `verify` (the costly computations themselves) wrapped by a counter."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import argon2
import pytest

from deelrx.identity.v1 import identity_pb2 as pb
from tests.integration.harness import domain_error
from tests.integration.identity.conftest import (  # noqa: F401 - fixtures
    PASSWORD,
    Identity,
    call,
    clock,
    ctx,
    identity,
)


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    for name in ("hash", "verify"):
        original = getattr(argon2.PasswordHasher, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            counts["argon2"] += 1
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(argon2.PasswordHasher, name, counting)
    yield counts


def address() -> str:
    return f"probe.{uuid.uuid4().hex[:10]}@example.com"


async def addresses(identity: Identity) -> dict[str, str]:  # noqa: F811
    verified, pending = address(), address()
    await identity.account(verified)
    await identity.signup(pending)
    return {"verified": verified, "pending": pending, "unknown": address()}


async def test_signup_does_the_same_work_for_every_address(
    identity: Identity,  # noqa: F811
    hash_calls: Counter[str],
) -> None:
    known = await addresses(identity)
    answers, work, before_mails = {}, {}, {}
    for kind, email in known.items():
        before_hashes = hash_calls["argon2"]
        before_mails[kind] = len(await identity.mails_to(email, 0, 0))
        reply = await call(
            identity.stub.StartSignup,
            pb.StartSignupRequest(context=ctx(), email=email, password=PASSWORD + "!", name="Probe"),
        )
        answers[kind] = reply.SerializeToString()
        work[kind] = hash_calls["argon2"] - before_hashes
    # The unknown address (staged last) gets its link; the mail relay works in staging order, so
    # by then the others' mails (a notice, or nothing while an address's mail is throttled) are out.
    assert len(await identity.mails_to(known["unknown"], 1)) == 1
    for kind, email in known.items():
        assert len(await identity.mails_to(email, 0, 0)) - before_mails[kind] <= 1, kind
    assert len(set(answers.values())) == 1, answers
    assert set(work.values()) == {1}, work


async def test_login_does_the_same_work_for_every_address(
    identity: Identity,  # noqa: F811
    hash_calls: Counter[str],
) -> None:
    known = await addresses(identity)
    work, codes = {}, {}
    for kind, email in known.items():
        before = hash_calls["argon2"]
        error = await identity.login_error(email, PASSWORD + "-wrong", ip=f"192.0.2.{len(work) + 1}")
        work[kind] = hash_calls["argon2"] - before
        codes[kind] = (error.code, error.message)
    assert set(work.values()) == {1}, work
    assert len(set(codes.values())) == 1, codes  # wrong password: the same answer for all three
    # Absurd input (over the maximum length) costs the same hash as a plausible one.
    before = hash_calls["argon2"]
    await identity.login_error(known["verified"], "x" * 5000, ip="192.0.2.50")
    await identity.login_error(known["unknown"], "x" * 5000, ip="192.0.2.51")
    assert hash_calls["argon2"] - before == 2


async def test_resend_answers_alike_and_hashes_nothing(
    identity: Identity,  # noqa: F811
    hash_calls: Counter[str],
) -> None:
    known = await addresses(identity)
    known["malformed"] = "not-an-address"
    answers = set()
    before_hashes = hash_calls["argon2"]
    for _kind, email in known.items():
        reply = await call(identity.stub.ResendVerification, pb.ResendVerificationRequest(context=ctx(), email=email))
        answers.add(reply.SerializeToString())
    assert len(answers) == 1
    assert hash_calls["argon2"] == before_hashes
    # Only the pending sign-up's mailbox learns anything (its owner started that sign-up). The
    # sentinel: a sign-up after the resends; once its mail is out, theirs would be too.
    await identity.signup(f"sentinel-{uuid.uuid4().hex[:8]}@example.com")
    assert await identity.mails_to(known["unknown"], 0) == []


async def test_unverified_correct_password_is_the_only_distinct_answer(
    identity: Identity,  # noqa: F811
    hash_calls: Counter[str],
) -> None:
    """API.md: `email_not_verified` is told only to whoever knows the sign-up's password."""
    known = await addresses(identity)
    error = await identity.login_error(known["pending"], PASSWORD, ip="192.0.2.77")
    assert error.code == "email_not_verified"
    wrong = await domain_error(
        identity.stub.Authenticate(
            pb.AuthenticateRequest(context=ctx("192.0.2.78"), email=known["pending"], password=PASSWORD + "x")
        )
    )
    assert wrong.code == "invalid_credentials"
