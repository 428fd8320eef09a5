"""Password reset and change over in-memory ports: single-use links, enumeration-safe requests,
the current password counted like a login."""

from __future__ import annotations

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.identity.domain import lockout
from tests.unit.identity.fakes import World, make_world

PASSWORD = "velvet-thunder-orchard-42"
NEW_PASSWORD = "quiet-harbor-lantern-77"
CTX = common_pb2.RequestContext(client_ip="198.51.100.7", user_agent="unit")


@pytest.fixture
async def world() -> World:
    world = make_world()
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    await world.app.signup.verify_email(world.link_token("ada@example.com"))
    return world


async def test_a_reset_link_sets_the_password_once(world: World) -> None:
    await world.app.passwords.request_reset("ada@example.com", CTX)
    token = world.link_token("ada@example.com")

    user_id = await world.app.passwords.reset(token, NEW_PASSWORD, CTX)

    assert (await world.app.login.authenticate("ada@example.com", NEW_PASSWORD, CTX)).user.id == user_id
    with pytest.raises(DomainError) as old:
        await world.app.login.authenticate("ada@example.com", PASSWORD, CTX)
    assert old.value.code == "invalid_credentials"
    with pytest.raises(DomainError) as again:
        await world.app.passwords.reset(token, "yet-another-password-5", CTX)
    assert again.value.code == "invalid_token"


async def test_a_refused_new_password_does_not_spend_the_link(world: World) -> None:
    await world.app.passwords.request_reset("ada@example.com", CTX)
    token = world.link_token("ada@example.com")

    with pytest.raises(DomainError) as weak:
        await world.app.passwords.reset(token, "short", CTX)
    assert weak.value.code == "validation_error"
    assert await world.app.passwords.reset(token, NEW_PASSWORD, CTX)


async def test_a_newer_link_replaces_the_older_and_links_expire(world: World) -> None:
    await world.app.passwords.request_reset("ada@example.com", CTX)
    first = world.link_token("ada@example.com")
    world.clock.advance(seconds=61)
    await world.app.passwords.request_reset("ada@example.com", CTX)
    second = world.link_token("ada@example.com")

    with pytest.raises(DomainError):
        await world.app.passwords.reset(first, NEW_PASSWORD, CTX)
    world.clock.advance(minutes=31)
    with pytest.raises(DomainError):
        await world.app.passwords.reset(second, NEW_PASSWORD, CTX)


async def test_asking_for_an_unknown_address_answers_alike_and_mails_nobody(world: World) -> None:
    mails = len(world.memory.mails)

    await world.app.passwords.request_reset("nobody@example.com", CTX)
    await world.app.passwords.request_reset("not an address", CTX)

    assert len(world.memory.mails) == mails
    (event,) = world.events_of("password.reset_requested")
    assert event.outcome == "failure" and "nobody" not in str(event)


async def test_a_reset_ends_every_lock_of_the_account(world: World) -> None:
    for _ in range(lockout.CLIENT_LIMIT):
        with pytest.raises(DomainError):
            await world.app.login.authenticate("ada@example.com", "wrong-guess-123456", CTX)
    await world.app.passwords.request_reset("ada@example.com", CTX)

    await world.app.passwords.reset(world.link_token("ada@example.com"), NEW_PASSWORD, CTX)

    assert (await world.app.login.authenticate("ada@example.com", NEW_PASSWORD, CTX)).user


async def test_a_change_needs_the_current_password_and_counts_wrong_ones(world: World) -> None:
    user_id = next(iter(world.memory.users))
    for _ in range(lockout.CLIENT_LIMIT):
        with pytest.raises(DomainError) as wrong:
            await world.app.passwords.change(user_id, "not-the-password-1", NEW_PASSWORD, CTX)
        assert wrong.value.code == "invalid_credentials"

    with pytest.raises(DomainError) as locked:
        await world.app.passwords.change(user_id, PASSWORD, NEW_PASSWORD, CTX)
    assert locked.value.code == "account_locked"

    other = common_pb2.RequestContext(client_ip="203.0.113.9")
    await world.app.passwords.change(user_id, PASSWORD, NEW_PASSWORD, other)
    assert (await world.app.login.authenticate("ada@example.com", NEW_PASSWORD, other)).user.id == user_id
