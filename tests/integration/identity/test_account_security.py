"""Password reset, TOTP and recovery codes in identity, with a frozen clock: expiry, window
edges, lockout interplay, concurrency, and no secret stored in clear."""

from __future__ import annotations

import asyncio
import base64
import re
from urllib.parse import unquote

from sqlalchemy import inspect, select, text

from deelrx.identity.v1 import identity_pb2 as pb
from deelrx_kit.db import create_engine
from deelrx_kit.errors import DomainError
from services.identity.adapters.tables import mail_outbox, users
from services.identity.domain import totp
from tests.integration.harness import domain_error, eventually

from .conftest import PASSWORD, Identity, call, ctx

NEW_PASSWORD = "quiet meadow lantern 1977"
RESET_RE = re.compile(r"/reset-password\?token=([A-Za-z0-9_\-%]+)")
ATTACKER = "203.0.113.66"


async def reset_token(identity: Identity, address: str, count: int) -> str:
    mails = [
        m for m in await identity.mails_to(address, count) if "reset-password" in m.get_body(("plain",)).get_content()
    ]
    assert len(mails) >= 1
    match = RESET_RE.search(mails[-1].get_body(("plain",)).get_content())
    assert match
    return unquote(match.group(1))


async def forgot(identity: Identity, address: str) -> None:
    await call(identity.stub.RequestPasswordReset, pb.RequestPasswordResetRequest(context=ctx(), email=address))


async def reset(identity: Identity, token: str, password: str = NEW_PASSWORD) -> pb.ResetPasswordResponse:
    return await call(
        identity.stub.ResetPassword, pb.ResetPasswordRequest(context=ctx(), token=token, new_password=password)
    )


async def enable_totp(identity: Identity, user_id: str) -> tuple[str, list[str]]:
    start = await call(identity.stub.EnrollTotp, pb.EnrollTotpRequest(context=ctx(), user_id=user_id))
    code = totp.code_at(start.secret, totp.time_step(identity.clock.now()))
    done = await call(identity.stub.ConfirmTotp, pb.ConfirmTotpRequest(context=ctx(), user_id=user_id, code=code))
    return start.secret, list(done.recovery_codes)


async def mfa_login(identity: Identity, address: str, ip: str = "198.51.100.7", **factor: str) -> pb.VerifyMfaResponse:
    first = await identity.login(address, ip=ip)
    assert first.mfa_required and first.mfa_token
    return await call(
        identity.stub.VerifyMfa, pb.VerifyMfaRequest(context=ctx(ip), mfa_token=first.mfa_token, **factor)
    )


async def test_reset_link_expires_after_30_minutes_and_a_newer_one_replaces_it(identity: Identity) -> None:
    await identity.account("reset@example.com")
    await forgot(identity, "reset@example.com")
    first = await reset_token(identity, "reset@example.com", 2)
    identity.clock.advance(seconds=61)  # past the one-mail-a-minute throttle
    await forgot(identity, "reset@example.com")
    second = await reset_token(identity, "reset@example.com", 3)
    assert first != second
    assert (
        await domain_error(identity.stub.ResetPassword(pb.ResetPasswordRequest(token=first, new_password=NEW_PASSWORD)))
    ).code == "invalid_token"

    identity.clock.advance(minutes=30)
    assert (
        await domain_error(
            identity.stub.ResetPassword(pb.ResetPasswordRequest(token=second, new_password=NEW_PASSWORD))
        )
    ).code == "invalid_token"
    await identity.login("reset@example.com")  # the password is unchanged


async def test_reset_clears_every_lock_and_a_change_kills_the_reset_link(identity: Identity) -> None:
    user_id = await identity.account("locked@example.com")
    for _ in range(10):
        await identity.login_error("locked@example.com", "guess-guess-guess", ATTACKER)
    assert (await identity.login_error("locked@example.com", PASSWORD, ATTACKER)).code == "account_locked"
    assert (await identity.login_error("locked@example.com", PASSWORD, ATTACKER)).code == "account_locked"
    mails = await identity.mails_to("locked@example.com", 2)
    lock_mails = [m for m in mails if "blocked" in str(m["Subject"])]
    assert len(lock_mails) == 1, "one notice per lock period"
    assert "forgot-password" in lock_mails[0].get_body(("plain",)).get_content()
    await forgot(identity, "locked@example.com")
    done = await reset(identity, await reset_token(identity, "locked@example.com", 3))
    assert done.user_id == user_id
    await identity.login("locked@example.com", NEW_PASSWORD, ip=ATTACKER)

    identity.clock.advance(seconds=61)
    await forgot(identity, "locked@example.com")
    token = await reset_token(identity, "locked@example.com", 5)
    await call(
        identity.stub.ChangePassword,
        pb.ChangePasswordRequest(context=ctx(), user_id=user_id, current_password=NEW_PASSWORD, new_password=PASSWORD),
    )
    assert (
        await domain_error(identity.stub.ResetPassword(pb.ResetPasswordRequest(token=token, new_password=NEW_PASSWORD)))
    ).code == "invalid_token"


async def test_concurrent_resets_with_one_token_succeed_once(identity: Identity) -> None:
    await identity.account("race@example.com")
    await forgot(identity, "race@example.com")
    token = await reset_token(identity, "race@example.com", 2)
    results = await asyncio.gather(
        *(reset(identity, token, f"{NEW_PASSWORD} {i}") for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, pb.ResetPasswordResponse) for r in results) == 1
    assert all(r.code == "invalid_token" for r in results if isinstance(r, DomainError))
    assert len([r for r in results if not isinstance(r, (DomainError, pb.ResetPasswordResponse))]) == 0


async def test_mfa_stays_required_after_a_reset(identity: Identity) -> None:
    user_id = await identity.account("mfa-reset@example.com")
    await enable_totp(identity, user_id)
    await forgot(identity, "mfa-reset@example.com")
    await reset(identity, await reset_token(identity, "mfa-reset@example.com", 3))
    assert (await identity.login("mfa-reset@example.com", NEW_PASSWORD)).mfa_required


async def test_totp_window_edges_and_replay_with_a_frozen_clock(identity: Identity) -> None:
    user_id = await identity.account("window@example.com")
    secret, _ = await enable_totp(identity, user_id)
    t = totp.time_step(identity.clock.now())
    identity.clock.advance(seconds=30)  # now at step t+1
    # Two steps back and two ahead are outside the window.
    for step in (t - 1, t + 3):
        error = await domain_error(
            identity.stub.VerifyMfa(
                pb.VerifyMfaRequest(
                    mfa_token=(await identity.login("window@example.com")).mfa_token, code=totp.code_at(secret, step)
                )
            )
        )
        assert error.code == "invalid_mfa_code"
    # One step ahead is accepted; then the current (earlier) step is a replay.
    ok = await mfa_login(identity, "window@example.com", code=totp.code_at(secret, t + 2))
    assert list(ok.amr) == ["pwd", "otp"]
    error = await domain_error(
        identity.stub.VerifyMfa(
            pb.VerifyMfaRequest(
                mfa_token=(await identity.login("window@example.com")).mfa_token, code=totp.code_at(secret, t + 1)
            )
        )
    )
    assert error.code == "invalid_mfa_code"


async def test_mfa_token_lives_five_minutes(identity: Identity) -> None:
    user_id = await identity.account("slow@example.com")
    secret, _ = await enable_totp(identity, user_id)
    first = await identity.login("slow@example.com")
    identity.clock.advance(minutes=5, seconds=1)
    code = totp.code_at(secret, totp.time_step(identity.clock.now()))
    error = await domain_error(identity.stub.VerifyMfa(pb.VerifyMfaRequest(mfa_token=first.mfa_token, code=code)))
    assert error.code == "invalid_mfa_code"


async def test_wrong_codes_count_toward_the_lockout(identity: Identity) -> None:
    user_id = await identity.account("guessed@example.com")
    await enable_totp(identity, user_id)
    outcomes = []
    for _ in range(6):
        try:
            first = await identity.login("guessed@example.com", ip=ATTACKER)
        except DomainError as exc:
            outcomes.append(exc.code)
            continue
        error = await domain_error(
            identity.stub.VerifyMfa(
                pb.VerifyMfaRequest(context=ctx(ATTACKER), mfa_token=first.mfa_token, code="000000")
            )
        )
        outcomes.append(error.code)
    # Each round costs two failures (the unfinished password step and the wrong code).
    assert outcomes[-1] == "account_locked", outcomes


async def test_confirming_twice_at_once_enables_once(identity: Identity) -> None:
    user_id = await identity.account("twice@example.com")
    start = await call(identity.stub.EnrollTotp, pb.EnrollTotpRequest(context=ctx(), user_id=user_id))
    step = totp.time_step(identity.clock.now())
    codes = [totp.code_at(start.secret, step + d) for d in (-1, 0, 1)]
    results = await asyncio.gather(
        *(
            call(identity.stub.ConfirmTotp, pb.ConfirmTotpRequest(context=ctx(), user_id=user_id, code=c))
            for c in codes
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, pb.ConfirmTotpResponse) for r in results) == 1
    assert sorted(r.code for r in results if isinstance(r, DomainError)) == ["conflict", "conflict"]
    status = await call(identity.stub.GetMfaStatus, pb.GetMfaStatusRequest(user_id=user_id))
    assert status.totp_enabled and status.recovery_codes_remaining == 10


async def test_regeneration_while_a_login_uses_an_old_code(identity: Identity) -> None:
    user_id = await identity.account("regen@example.com")
    secret, codes = await enable_totp(identity, user_id)
    identity.clock.advance(seconds=30)
    step = totp.time_step(identity.clock.now())
    first = await identity.login("regen@example.com")
    login = call(
        identity.stub.VerifyMfa, pb.VerifyMfaRequest(context=ctx(), mfa_token=first.mfa_token, recovery_code=codes[0])
    )
    regen = call(
        identity.stub.RegenerateRecoveryCodes,
        pb.RegenerateRecoveryCodesRequest(context=ctx(), user_id=user_id, code=totp.code_at(secret, step)),
    )
    login_result, regen_result = await asyncio.gather(login, regen, return_exceptions=True)
    assert isinstance(regen_result, pb.RegenerateRecoveryCodesResponse)
    status = await call(identity.stub.GetMfaStatus, pb.GetMfaStatusRequest(user_id=user_id))
    # Either the login came first (its code was then replaced) or it was refused: never half.
    assert status.recovery_codes_remaining == 10
    assert isinstance(login_result, pb.VerifyMfaResponse) or login_result.code == "invalid_mfa_code"
    error = await domain_error(
        identity.stub.VerifyMfa(
            pb.VerifyMfaRequest(mfa_token=(await identity.login("regen@example.com")).mfa_token, recovery_code=codes[1])
        )
    )
    assert error.code == "invalid_mfa_code"


def _forms(value: str) -> list[bytes]:
    raw = value.encode()
    forms = [raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]
    forms.append(base64.b32encode(raw).rstrip(b"="))
    try:  # a base32 TOTP secret: also its decoded bytes in every form
        decoded = base64.b32decode(value)
        forms += [decoded, decoded.hex().encode(), base64.b64encode(decoded).rstrip(b"=")]
    except ValueError:
        pass
    return forms


async def test_no_secret_is_stored_in_clear(identity: Identity) -> None:
    verification = await identity.signup("scan@example.com")
    user_id = str(
        (await call(identity.stub.VerifyEmail, pb.VerifyEmailRequest(context=ctx(), token=verification))).user_id
    )
    secret, codes = await enable_totp(identity, user_id)
    await mfa_login(identity, "scan@example.com", recovery_code=codes[0])
    await forgot(identity, "scan@example.com")
    token = await reset_token(identity, "scan@example.com", 4)  # sign-up, TOTP on, code used, reset
    await reset(identity, token)
    first = await identity.login("scan@example.com", NEW_PASSWORD)
    needles = [secret, token, verification, first.mfa_token, first.mfa_token.removeprefix("mfa_")]
    needles += [c for code in codes for c in (code, code.replace("-", ""))]

    async def staged_mails() -> int:
        async with identity.rt.sessionmaker() as session:  # type: ignore[attr-defined]
            return len((await session.execute(select(mail_outbox.c.id))).all())

    # Every mail delivered: the outbox holds no link any more, only what the scan must judge.
    await eventually(staged_mails, lambda n: n == 0)

    engine = create_engine(identity.settings.database_url, "identity")
    found: list[str] = []
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            for table in tables:
                rows = (await conn.execute(text(f'SELECT * FROM "{table}"'))).all()
                blob = b"\n".join(
                    repr(tuple(r)).encode() + b"".join(v for v in r if isinstance(v, bytes)) for r in rows
                )
                found += [f"{table}:{n[:6]}" for n in needles for form in _forms(n) if form and form in blob]
            sealed = (await conn.execute(select(users.c.totp_secret_encrypted))).scalar_one()
    finally:
        await engine.dispose()
    assert sealed and not found, found


async def test_reencryption_moves_totp_secrets_to_the_active_key(identity: Identity) -> None:
    from deelrx_kit.db import session_factory
    from deelrx_kit.keyring import Keyring, new_key_entry
    from services.identity.reencrypt import reseal_totp_secrets

    user_id = await identity.account("rotate@example.com")
    secret, _ = await enable_totp(identity, user_id)
    old = identity.settings.keyring()
    old_entry = (identity.settings.data_dir / "keyring").read_text().strip()
    rotated = Keyring.parse(f"{new_key_entry('next')},{old_entry}")
    engine = create_engine(identity.settings.database_url, "identity")
    try:
        assert await reseal_totp_secrets(session_factory(engine), rotated) == 1
        assert await reseal_totp_secrets(session_factory(engine), rotated) == 0
        async with engine.connect() as conn:
            blob = (await conn.execute(select(users.c.totp_secret_encrypted))).scalar_one()
    finally:
        await engine.dispose()
    assert rotated.key_id_of(blob) == "next" and old.active_kid != "next"
    assert rotated.open(blob, f"totp:{user_id}".encode()).decode() == secret


async def _login_with_device(
    identity: Identity, address: str, password: str, ip: str, device: str
) -> pb.AuthenticateResponse:
    return await call(
        identity.stub.Authenticate,
        pb.AuthenticateRequest(context=ctx(ip), email=address, password=password, device_token=device),
    )


async def test_a_known_device_is_not_locked_out_by_other_clients(identity: Identity) -> None:
    await identity.account("owner@example.com")
    device = (await identity.login("owner@example.com")).device_token
    assert device.startswith("d1.")
    other_device = (
        await identity.login((await identity.account("other@example.com")) and "other@example.com")
    ).device_token
    # Attackers from ten addresses, the owner's own NAT address included, spend all 100 failures.
    for i in range(10):
        for _ in range(10):
            await identity.login_error("owner@example.com", "guess-guess-guess", f"203.0.113.{i}")
    for ip in ("203.0.113.0", "192.0.2.99"):
        assert (await identity.login_error("owner@example.com", PASSWORD, ip)).code == "account_locked"
    # A token of another account, or a forged one, does not help.
    forged = device[:-4] + ("0000" if not device.endswith("0000") else "1111")
    for token in (other_device, forged, "d1.x.y.z", "garbage" * 50):
        error = await domain_error(
            identity.stub.Authenticate(
                pb.AuthenticateRequest(
                    context=ctx("192.0.2.99"), email="owner@example.com", password=PASSWORD, device_token=token
                )
            )
        )
        assert error.code == "account_locked"
    # The owner's device still gets in, from the attacker's address too (and, proving the
    # password, ends the account-wide lock as any successful login does).
    ok = await _login_with_device(identity, "owner@example.com", PASSWORD, "203.0.113.0", device)
    assert ok.user.email == "owner@example.com" and ok.device_token


async def test_a_known_device_gets_only_its_own_ten_guesses(identity: Identity) -> None:
    await identity.account("stolen@example.com")
    device = (await identity.login("stolen@example.com")).device_token
    for _ in range(10):
        error = await domain_error(
            identity.stub.Authenticate(
                pb.AuthenticateRequest(
                    context=ctx(), email="stolen@example.com", password="guess-guess-guess", device_token=device
                )
            )
        )
        assert error.code == "invalid_credentials"
    error = await domain_error(
        identity.stub.Authenticate(
            pb.AuthenticateRequest(context=ctx(), email="stolen@example.com", password=PASSWORD, device_token=device)
        )
    )
    assert error.code == "account_locked"
    await identity.login("stolen@example.com", ip="192.0.2.50")  # other clients are unaffected


async def test_mail_bodies_wait_in_the_outbox_sealed(tmp_path, database_url, nats_url, redis_url, clock) -> None:
    from deelrx.identity.v1 import identity_pb2_grpc
    from deploy.local.infra import free_port
    from services.identity.adapters.mail_outbox import SqlMailOutbox
    from services.identity.adapters.tables import mail_outbox

    from .conftest import make_settings, start_identity

    closed_smtp = f"smtp://127.0.0.1:{free_port()}"  # nothing listens: mails stay staged
    settings = make_settings(tmp_path, database_url, nats_url, redis_url, smtp_url=closed_smtp)
    rt, chan = await start_identity(settings, clock)
    try:
        stub = identity_pb2_grpc.IdentityServiceStub(chan)
        await call(stub.StartSignup, pb.StartSignupRequest(email="sealed@example.com", password=PASSWORD, name="S"))
        async with rt.sessionmaker() as session:
            row = (await session.execute(select(mail_outbox))).one()
        assert row.body_text.startswith("sealed:") and "verify-email" not in row.body_text
        opened = SqlMailOutbox(settings.keyring()).body_of(row)
        assert "/verify-email?token=" in opened
    finally:
        await chan.close()
        await rt.stop()


async def test_expired_reset_tokens_and_mfa_challenges_are_purged(identity: Identity) -> None:
    from deelrx_kit.purge import purge
    from services.identity import purge as identity_purge
    from services.identity.adapters.tables import mfa_challenges, password_resets

    user_id = await identity.account("purge@example.com")
    await enable_totp(identity, user_id)
    await identity.login("purge@example.com")
    await forgot(identity, "purge@example.com")
    await reset_token(identity, "purge@example.com", 3)
    result = await purge(identity.rt.sessionmaker, identity_purge.RULES, identity.clock.now(), lock_name="t-purge")
    assert result.deleted["password_resets"] == 0 and result.deleted["mfa_challenges"] == 0
    identity.clock.advance(minutes=31)
    result = await purge(identity.rt.sessionmaker, identity_purge.RULES, identity.clock.now(), lock_name="t-purge")
    assert result.deleted["password_resets"] == 1 and result.deleted["mfa_challenges"] == 1
    async with identity.rt.sessionmaker() as session:
        assert (await session.execute(select(password_resets.c.user_id))).first() is None
        assert (await session.execute(select(mfa_challenges.c.user_id))).first() is None
