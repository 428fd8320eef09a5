"""Authenticate: credentials, enumeration safety, lockout per client and per account."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select

from deelrx_kit.audit_events import keyed_hash
from deelrx_kit.db import create_engine
from deelrx_kit.errors import DomainError
from services.identity.adapters.tables import users
from tests.integration.harness import AuditTap

from .conftest import PASSWORD, Identity, make_settings, start_identity

ATTACKER = "203.0.113.66"
OTHER = "192.0.2.10"


async def test_wrong_password_and_unknown_email_answer_alike(identity: Identity, audit_tap: AuditTap) -> None:
    # The AUDIT stream is shared by the whole test session: pick out this test's events by
    # the known user id and the keyed hash of this test's own unknown address.
    unknown_email = f"unknown-{uuid.uuid4().hex[:8]}@example.com"
    unknown_hash = keyed_hash(b"test-secret-0123456789abcdef-0123456789", unknown_email)
    user_id = await identity.account("known@example.com")
    wrong = await identity.login_error("known@example.com", "not-the-password-1")
    unknown = await identity.login_error(unknown_email, "not-the-password-1")
    for error in (wrong, unknown):
        assert error.code == "invalid_credentials"
    assert wrong.message == unknown.message

    events = await audit_tap.wait(
        lambda e: e.type == "auth.login_failed" and (e.actor.user_id == user_id or e.subject_hash == unknown_hash), 2
    )
    reasons = {e.details["reason"] for e in events}
    assert reasons == {"bad_password", "unknown_account"}
    for event in events:
        raw = event.SerializeToString()
        assert unknown_email.encode() not in raw and b"not-the-password-1" not in raw
        assert event.outcome == "failure" and event.team_id == ""


async def test_ten_failures_lock_that_client_for_fifteen_minutes(identity: Identity) -> None:
    await identity.account("victim@example.com")
    for _ in range(10):
        assert (
            await identity.login_error("victim@example.com", "guess-guess-guess", ATTACKER)
        ).code == "invalid_credentials"

    locked = await identity.login_error("victim@example.com", PASSWORD, ATTACKER)  # even the right password
    assert locked.code == "account_locked"
    assert 0 < locked.retry_after_seconds <= 900

    # Another client is not affected, and its success does not unlock the attacker.
    assert (await identity.login("victim@example.com", ip=OTHER)).user.email == "victim@example.com"
    assert (await identity.login_error("victim@example.com", PASSWORD, ATTACKER)).code == "account_locked"

    identity.clock.advance(minutes=14, seconds=59)
    assert (await identity.login_error("victim@example.com", PASSWORD, ATTACKER)).code == "account_locked"
    identity.clock.advance(seconds=1)
    assert (await identity.login("victim@example.com", ip=ATTACKER)).user.email == "victim@example.com"


async def test_unknown_emails_get_the_same_lockout(identity: Identity) -> None:
    for _ in range(10):
        assert (
            await identity.login_error("ghost@example.com", "guess-guess-guess", ATTACKER)
        ).code == "invalid_credentials"
    locked = await identity.login_error("ghost@example.com", "guess-guess-guess", ATTACKER)
    assert locked.code == "account_locked" and locked.retry_after_seconds == 900
    assert (await identity.login_error("ghost@example.com", "guess-guess-guess", OTHER)).code == "invalid_credentials"


async def test_concurrent_guesses_never_pass_the_client_limit(identity: Identity) -> None:
    await identity.account("burst@example.com")
    results = await asyncio.gather(
        *(identity.login_error("burst@example.com", f"guess-number-{i}", ATTACKER) for i in range(16))
    )
    codes = sorted(e.code for e in results)
    assert codes.count("invalid_credentials") == 10
    assert codes.count("account_locked") == 6


async def test_success_resets_the_client_count(identity: Identity) -> None:
    await identity.account("forgetful@example.com")
    for _ in range(9):
        await identity.login_error("forgetful@example.com", "guess-guess-guess")
    await identity.login("forgetful@example.com")
    for _ in range(9):
        assert (await identity.login_error("forgetful@example.com", "guess-guess-guess")).code == "invalid_credentials"
    await identity.login("forgetful@example.com")


async def test_one_hundred_failures_from_all_clients_lock_until_reset(identity: Identity) -> None:
    await identity.account("target@example.com")
    for client in range(10):
        ip = f"10.0.{client}.1"
        results = await asyncio.gather(
            *(identity.login_error("target@example.com", "spray-spray-spray", ip) for _ in range(10))
        )
        assert all(r.code == "invalid_credentials" for r in results)
    fresh = await identity.login_error("target@example.com", PASSWORD, "10.99.0.1")
    assert fresh.code == "account_locked"
    identity.clock.advance(hours=2)  # waiting does not help
    assert (await identity.login_error("target@example.com", PASSWORD, "10.99.0.2")).code == "account_locked"


async def test_login_rehashes_when_parameters_change(tmp_path, database_url, nats_url, redis_url, clock) -> None:
    from deelrx.identity.v1 import identity_pb2_grpc

    settings = make_settings(tmp_path, database_url, nats_url, redis_url)
    rt, chan = await start_identity(settings, clock)
    harness = Identity(rt, identity_pb2_grpc.IdentityServiceStub(chan), settings, clock, tmp_path / "mail")
    try:
        await harness.account("rehash@example.com")
    finally:
        await chan.close()
        await rt.stop()

    stronger = make_settings(tmp_path, database_url, nats_url, redis_url, argon2_time_cost=2)
    rt, chan = await start_identity(stronger, clock)
    harness = Identity(rt, identity_pb2_grpc.IdentityServiceStub(chan), stronger, clock, tmp_path / "mail")
    engine = create_engine(database_url, "identity")
    try:
        async with engine.connect() as conn:
            before = (await conn.execute(select(users.c.password_hash))).scalar_one()
        await harness.login("rehash@example.com")
        async with engine.connect() as conn:
            after = (await conn.execute(select(users.c.password_hash))).scalar_one()
        assert ",t=1," in before and ",t=2," in after
        await harness.login("rehash@example.com")  # the new hash verifies
    finally:
        await engine.dispose()
        await chan.close()
        await rt.stop()


async def test_failures_are_not_counted_twice_when_locked(identity: Identity) -> None:
    """Attempts refused by the lock are not verified and do not extend it."""
    await identity.account("patient@example.com")
    for _ in range(10):
        await identity.login_error("patient@example.com", "guess-guess-guess", ATTACKER)
    for _ in range(5):
        identity.clock.advance(minutes=2)
        assert (
            await identity.login_error("patient@example.com", "guess-guess-guess", ATTACKER)
        ).code == "account_locked"
    identity.clock.advance(minutes=5)
    error = await identity.login_error("patient@example.com", "guess-guess-guess", ATTACKER)
    assert isinstance(error, DomainError) and error.code == "invalid_credentials"
