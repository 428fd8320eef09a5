"""Automatic responses over in-memory ports: a hold answers like the lockout and a reset ends
it; a demanded second factor is a mailed code that works once; each alert applies once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from deelrx_kit.ids import new_id
from tests.unit.identity.fakes import World, make_world

PASSWORD = "velvet-thunder-orchard-42"
CTX = common_pb2.RequestContext(client_ip="198.51.100.7", user_agent="unit")
CODE_RE = re.compile(r"^\s+(\d{6})$", re.MULTILINE)


@pytest.fixture
async def world() -> World:
    world = make_world()
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    await world.app.signup.verify_email(world.link_token("ada@example.com"))
    return world


async def test_a_hold_locks_the_right_password_until_it_ends_or_a_reset(world: World) -> None:
    user_id = next(iter(world.memory.users))
    until = world.clock.now() + timedelta(minutes=15)
    alert = new_id("alr")

    assert await world.app.holds.lock(alert, user_id, "", until, "security:brute_force", CTX)
    assert not await world.app.holds.lock(alert, user_id, "", until, "security:brute_force", CTX)  # once per alert

    with pytest.raises(DomainError) as held:
        await world.app.login.authenticate("ada@example.com", PASSWORD, CTX)
    assert held.value.code == "account_locked" and held.value.retry_after_seconds == 15 * 60
    await world.app.passwords.request_reset("ada@example.com", CTX)
    await world.app.passwords.reset(world.link_token("ada@example.com"), "quiet-harbor-lantern-77", CTX)
    assert (await world.app.login.authenticate("ada@example.com", "quiet-harbor-lantern-77", CTX)).user.id == user_id


async def test_a_demanded_second_factor_is_a_mailed_code_that_works_once(world: World) -> None:
    user_id = next(iter(world.memory.users))
    await world.app.holds.require_mfa(new_id("alr"), user_id, "security:session_anomaly", CTX)

    auth = await world.app.login.authenticate("ada@example.com", PASSWORD, CTX)
    assert auth.mfa_required
    found = CODE_RE.search(world.mails_to("ada@example.com")[-1].text)
    assert found
    verified, _ = await world.app.mfa_login.verify(auth.mfa_token, found.group(1), "", CTX)
    assert verified.user.id == user_id

    # Met: the next login needs the password only.
    assert not (await world.app.login.authenticate("ada@example.com", PASSWORD, CTX)).mfa_required
