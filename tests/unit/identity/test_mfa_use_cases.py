"""TOTP enrolment and the login's second step over in-memory ports: codes and recovery codes
work once, a challenge dies after too many wrong codes."""

from __future__ import annotations

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.identity.domain import totp
from services.identity.use_cases.mfa_login import MFA_MAX_FAILURES
from tests.unit.identity.fakes import World, make_world

PASSWORD = "velvet-thunder-orchard-42"
CTX = common_pb2.RequestContext(client_ip="198.51.100.7", user_agent="unit")


def code_now(world: World, secret: str, steps_ahead: int = 0) -> str:
    return totp.code_at(secret, totp.time_step(world.clock.now()) + steps_ahead)


@pytest.fixture
async def world() -> World:
    world = make_world()
    await world.app.signup.start("ada@example.com", PASSWORD, "Ada")
    await world.app.signup.verify_email(world.link_token("ada@example.com"))
    return world


async def _enable(world: World) -> tuple[str, str, list[str]]:
    user_id = next(iter(world.memory.users))
    start = await world.app.mfa.enroll(user_id, CTX)
    codes = await world.app.mfa.confirm(user_id, code_now(world, start.secret), CTX)
    world.clock.advance(seconds=totp.STEP_SECONDS)  # the confirming code's step is spent
    return user_id, start.secret, codes


async def _password_step(world: World) -> str:
    auth = await world.app.login.authenticate("ada@example.com", PASSWORD, CTX)
    assert auth.mfa_required and auth.mfa_token.startswith("mfa_")
    return auth.mfa_token


async def test_enrolment_needs_a_current_code_and_keeps_the_secret_sealed(world: World) -> None:
    user_id = next(iter(world.memory.users))
    start = await world.app.mfa.enroll(user_id, CTX)
    assert start.otpauth_uri.startswith("otpauth://totp/")
    assert start.secret.encode() not in world.memory.users[user_id]["totp_secret"].split(b"|")[0]

    with pytest.raises(DomainError) as wrong:
        await world.app.mfa.confirm(user_id, "000000" if code_now(world, start.secret) != "000000" else "111111", CTX)
    assert wrong.value.code == "invalid_mfa_code"

    codes = await world.app.mfa.confirm(user_id, code_now(world, start.secret), CTX)
    assert len(codes) == len(set(codes)) >= 8
    status = await world.app.mfa.status(user_id)
    assert (status.totp_enabled, status.recovery_codes_remaining) == (True, len(codes))
    assert world.mails_to("ada@example.com")[-1].subject  # the owner is told


async def test_login_needs_the_second_factor_and_a_code_works_once(world: World) -> None:
    _user_id, secret, _codes = await _enable(world)
    token = await _password_step(world)
    code = code_now(world, secret)

    auth, delivery = await world.app.mfa_login.verify(token, code, "", CTX)
    assert auth.amr == ["pwd", "otp"] and delivery == "cookie"

    with pytest.raises(DomainError) as replay:
        await world.app.mfa_login.verify(await _password_step(world), code, "", CTX)
    assert replay.value.code == "invalid_mfa_code"
    with pytest.raises(DomainError) as spent_token:
        await world.app.mfa_login.verify(token, code_now(world, secret, 1), "", CTX)
    assert spent_token.value.code == "invalid_mfa_code"


async def test_a_recovery_code_works_once(world: World) -> None:
    user_id, _secret, codes = await _enable(world)

    auth, _ = await world.app.mfa_login.verify(await _password_step(world), "", codes[0], CTX)
    assert auth.amr == ["pwd", "rec"]
    assert (await world.app.mfa.status(user_id)).recovery_codes_remaining == len(codes) - 1

    with pytest.raises(DomainError) as again:
        await world.app.mfa_login.verify(await _password_step(world), "", codes[0], CTX)
    assert again.value.code == "invalid_mfa_code"


async def test_regenerated_codes_replace_the_old_set(world: World) -> None:
    user_id, secret, old = await _enable(world)

    new = await world.app.mfa.regenerate_codes(user_id, code_now(world, secret), CTX)

    assert not set(new) & set(old)
    with pytest.raises(DomainError):
        await world.app.mfa_login.verify(await _password_step(world), "", old[1], CTX)
    auth, _ = await world.app.mfa_login.verify(await _password_step(world), "", new[1], CTX)
    assert auth.amr == ["pwd", "rec"]


async def test_a_challenge_dies_after_too_many_wrong_codes(world: World) -> None:
    _user_id, secret, _codes = await _enable(world)
    token = await _password_step(world)
    wrong = "000000" if code_now(world, secret) != "000000" else "111111"
    for _ in range(MFA_MAX_FAILURES):
        with pytest.raises(DomainError):
            await world.app.mfa_login.verify(token, wrong, "", CTX)

    with pytest.raises(DomainError) as dead:
        await world.app.mfa_login.verify(token, code_now(world, secret), "", CTX)
    assert "expired" in dead.value.message


async def test_disabling_needs_password_and_code(world: World) -> None:
    user_id, secret, _codes = await _enable(world)

    with pytest.raises(DomainError) as bad_password:
        await world.app.mfa.disable(user_id, "not-the-password-1", code_now(world, secret), CTX)
    assert bad_password.value.code == "invalid_credentials"
    await world.app.mfa.disable(user_id, PASSWORD, code_now(world, secret), CTX)

    assert not (await world.app.mfa.status(user_id)).totp_enabled
    assert not (await world.app.login.authenticate("ada@example.com", PASSWORD, CTX)).mfa_required
