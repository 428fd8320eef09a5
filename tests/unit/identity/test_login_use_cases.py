"""Login and lockout over in-memory ports: same answers for unknown and known addresses,
counted failures, locks per client and per account."""

from __future__ import annotations

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.identity.domain import lockout
from tests.unit.identity.fakes import World, make_world

PASSWORD = "velvet-thunder-orchard-42"


def ip(address: str) -> common_pb2.RequestContext:
    return common_pb2.RequestContext(client_ip=address, user_agent="unit")


@pytest.fixture
async def world() -> World:
    world = make_world()
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    await world.app.signup.verify_email(world.link_token("ada@example.com"))
    return world


async def _error(world: World, email: str, password: str, client: str = "198.51.100.7") -> DomainError:
    with pytest.raises(DomainError) as failed:
        await world.app.login.authenticate(email, password, ip(client))
    return failed.value


async def test_the_right_password_signs_in_with_a_device_token(world: World) -> None:
    auth = await world.app.login.authenticate("ADA@example.com", PASSWORD, ip("198.51.100.7"))

    assert auth.user.email == "ada@example.com"
    assert auth.amr == ["pwd"] and not auth.mfa_required
    assert auth.device_token
    assert len(world.events_of("auth.login_succeeded")) == 1


async def test_unknown_address_and_wrong_password_get_the_same_answer_and_work(world: World) -> None:
    before = world.hasher.verifications
    unknown = await _error(world, "nobody@example.com", PASSWORD)
    after_unknown = world.hasher.verifications
    wrong = await _error(world, "ada@example.com", "not-the-password-1")

    assert (unknown.code, unknown.message) == (wrong.code, wrong.message) == ("invalid_credentials", wrong.message)
    assert after_unknown - before == world.hasher.verifications - after_unknown == 1
    failures = world.events_of("auth.login_failed")
    assert [e.details["reason"] for e in failures] == ["unknown_account", "bad_password"]
    assert "nobody@example.com" not in str(failures[0])  # a keyed hash, never the address


async def test_a_pending_signup_with_its_password_is_told_to_verify(world: World) -> None:
    await world.app.signup.start("grace@example.com", PASSWORD, "Grace")

    assert (await _error(world, "grace@example.com", PASSWORD)).code == "email_not_verified"
    assert (await _error(world, "grace@example.com", "some-other-password-3")).code == "invalid_credentials"


async def test_ten_failures_lock_that_client_only_even_for_the_right_password(world: World) -> None:
    for _ in range(lockout.CLIENT_LIMIT):
        assert (await _error(world, "ada@example.com", "wrong-guess-123456")).code == "invalid_credentials"

    locked = await _error(world, "ada@example.com", PASSWORD)

    assert locked.code == "account_locked"
    assert locked.retry_after_seconds and locked.retry_after_seconds > 0
    # Another client is not locked out by the attacker's guesses.
    auth = await world.app.login.authenticate("ada@example.com", PASSWORD, ip("203.0.113.9"))
    assert auth.user.email == "ada@example.com"
    # The owner is told once per lock period.
    locked_mails = [m for m in world.mails_to("ada@example.com") if "locked" in m.subject.lower()]
    assert len(locked_mails) == 1


async def test_the_lock_ends_after_its_period(world: World) -> None:
    for _ in range(lockout.CLIENT_LIMIT):
        await _error(world, "ada@example.com", "wrong-guess-123456")
    world.clock.advance(seconds=lockout.CLIENT_LOCK.total_seconds() + 1)

    assert (await world.app.login.authenticate("ada@example.com", PASSWORD, ip("198.51.100.7"))).user


async def test_a_success_forgives_the_earlier_failures_of_that_client(world: World) -> None:
    for _ in range(lockout.CLIENT_LIMIT - 1):
        await _error(world, "ada@example.com", "wrong-guess-123456")
    await world.app.login.authenticate("ada@example.com", PASSWORD, ip("198.51.100.7"))

    for _ in range(lockout.CLIENT_LIMIT - 1):
        assert (await _error(world, "ada@example.com", "wrong-guess-123456")).code == "invalid_credentials"


async def test_the_account_wide_limit_locks_every_client_but_a_known_device(world: World) -> None:
    device = (await world.app.login.authenticate("ada@example.com", PASSWORD, ip("198.51.100.7"))).device_token
    for n in range(lockout.ACCOUNT_LIMIT):
        await _error(world, "ada@example.com", "wrong-guess-123456", client=f"10.0.{n // 250}.{n % 250}")

    assert (await _error(world, "ada@example.com", PASSWORD, client="192.0.2.1")).code == "account_locked"
    auth = await world.app.login.authenticate("ada@example.com", PASSWORD, ip("192.0.2.1"), device_token=device)
    assert auth.user.email == "ada@example.com"


async def test_unknown_addresses_are_counted_and_locked_alike(world: World) -> None:
    for _ in range(lockout.CLIENT_LIMIT):
        await _error(world, "nobody@example.com", PASSWORD)

    assert (await _error(world, "nobody@example.com", PASSWORD)).code == "account_locked"


async def test_an_outdated_hash_is_replaced_at_login(world: World) -> None:
    (row,) = world.memory.users.values()
    row["password_hash"] = "hashed:" + PASSWORD
    world.hasher.stale.add(row["password_hash"])
    world.hasher.hash = _rehash  # type: ignore[method-assign]

    await world.app.login.authenticate("ada@example.com", PASSWORD, ip("198.51.100.7"))

    assert row["password_hash"] == "rehashed"


async def _rehash(password: str) -> str:
    return "rehashed"
