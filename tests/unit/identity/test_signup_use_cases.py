"""Sign-up and verification over in-memory ports: single-use links, enumeration-safe answers."""

from __future__ import annotations

import pytest

from deelrx_kit.errors import DomainError
from tests.unit.identity.fakes import World, make_world

PASSWORD = "velvet-thunder-orchard-42"


@pytest.fixture
def world() -> World:
    return make_world()


async def test_a_verified_link_creates_the_account_once(world: World) -> None:
    await world.app.signup.start("Ada@Example.com", PASSWORD, "Ada")
    token = world.link_token("ada@example.com")
    assert world.mails_sent  # the mail relay was woken once the sign-up was committed

    user_id = await world.app.signup.verify_email(token)

    user = await world.app.profile.get_user(user_id)
    # The domain part is lower-cased, the local part kept.
    assert (user.email, user.name, user.email_verified) == ("Ada@example.com", "Ada", True)
    assert [e.type for e in world.events_of("user.signed_up")] == ["user.signed_up"]
    with pytest.raises(DomainError) as again:
        await world.app.signup.verify_email(token)
    assert again.value.code == "invalid_token"


async def test_an_expired_link_creates_nothing(world: World) -> None:
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    token = world.link_token("ada@example.com")
    world.clock.advance(hours=25)

    with pytest.raises(DomainError) as refused:
        await world.app.signup.verify_email(token)

    assert refused.value.code == "invalid_token"
    assert world.memory.users == {}


async def test_signing_up_with_a_taken_address_answers_alike_and_mails_the_owner(world: World) -> None:
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    await world.app.signup.verify_email(world.link_token("ada@example.com"))
    hashes_before = len(world.memory.signups)

    await world.app.signup.start("ada@example.com", "another-long-passphrase-7", "Mallory")  # no error

    assert len(world.memory.signups) == hashes_before == 0
    notice = world.mails_to("ada@example.com")[-1]
    assert "token=" not in notice.text  # a notice, not a link that could create anything


async def test_resend_replaces_the_link_and_is_silent_for_unknown_addresses(world: World) -> None:
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    first = world.link_token("ada@example.com")
    world.clock.advance(seconds=61)

    await world.app.signup.resend_verification("ada@example.com")
    await world.app.signup.resend_verification("nobody@example.com")
    await world.app.signup.resend_verification("not an address")

    second = world.link_token("ada@example.com")
    assert second != first
    assert world.mails_to("nobody@example.com") == []
    with pytest.raises(DomainError):
        await world.app.signup.verify_email(first)
    assert await world.app.signup.verify_email(second)


async def test_resends_are_throttled_per_address(world: World) -> None:
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    await world.app.signup.resend_verification("ada@example.com")
    await world.app.signup.resend_verification("ada@example.com")

    assert len(world.mails_to("ada@example.com")) == 1


async def test_two_signups_of_one_address_need_the_password_at_verification(world: World) -> None:
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    ada_token = world.link_token("ada@example.com")
    world.clock.advance(seconds=61)
    await world.app.signup.start("ada@example.com", "mallory-chose-this-one-9", "Mallory")

    with pytest.raises(DomainError) as refused:
        await world.app.signup.verify_email(ada_token)
    assert refused.value.code == "validation_error"

    user_id = await world.app.signup.verify_email(ada_token, password=PASSWORD)
    assert (await world.app.profile.get_user(user_id)).name == "Ada"
