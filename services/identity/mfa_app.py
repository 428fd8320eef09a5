"""TOTP two-factor authentication, recovery codes, the MFA step of login and re-authentication.

TOTP secrets are stored only sealed by the keyring (AES-256-GCM, bound to the user id). A code
is accepted once: the last accepted time step is stored by a conditional UPDATE, so two
concurrent requests with one code give one success. The login's MFA step lives in an
`mfa_challenges` row (5 minutes, dies after 5 wrong codes); wrong codes also count toward the
account lockout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from deelrx.common.v1 import common_pb2
from deelrx_kit import device_tokens
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError, conflict
from deelrx_kit.ids import ulid
from deelrx_kit.keyring import Keyring, KeyringError
from deelrx_kit.keys import RECOVERY_CODE_SELECTOR, derive_key
from services.identity.adapters.security_sql import (
    MfaChallenge,
    MfaChallengeRepository,
    RecoveryCodeRepository,
    TotpRepository,
    TotpState,
)
from services.identity.domain import passwords, recovery_codes, security_mail, tokens, totp
from services.identity.domain.model import Authentication, User
from services.identity.ports import PasswordHasher

if TYPE_CHECKING:
    from services.identity.app import IdentityApp

log = structlog.get_logger(__name__)

MFA_MAX_FAILURES = 5
DELIVERIES = ("cookie", "body")
_WRONG_CODE = "The code is not valid."
_DEAD_CHALLENGE = "This sign-in attempt has expired or failed too often; sign in again."


@dataclass(frozen=True)
class EnrollmentStart:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True)
class MfaStatus:
    totp_enabled: bool
    recovery_codes_remaining: int


class MfaUseCases:
    def __init__(
        self, core: IdentityApp, *, keyring: Keyring, code_hasher: PasswordHasher, challenge_ttl: timedelta
    ) -> None:
        self.core = core
        self.keyring = keyring
        self.code_hasher = code_hasher
        self.challenge_ttl = challenge_ttl
        self.totp = TotpRepository()
        self.codes = RecoveryCodeRepository()
        self.challenges = MfaChallengeRepository()
        self._selector_key = derive_key(core.config.secret, RECOVERY_CODE_SELECTOR)

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _aad(user_id: str) -> bytes:
        return f"totp:{user_id}".encode()

    def _secret(self, state: TotpState) -> str:
        assert state.secret_sealed is not None
        try:
            return self.keyring.open(state.secret_sealed, self._aad(state.user_id)).decode()
        except KeyringError:
            log.error("totp_secret_unreadable", user_id=state.user_id)
            raise DomainError("unavailable", "Two-factor authentication cannot be checked right now.") from None

    async def _state(self, user_id: str) -> tuple[TotpState, User]:
        async with reading(self.core.sessionmaker) as session:
            state = await self.totp.state(session, user_id) if user_id else None
            user = await self.core.users.get(session, user_id) if state else None
        if state is None or user is None:
            raise DomainError("unauthenticated")
        return state, user

    def _step_for(self, state: TotpState, raw_code: str) -> int | None:
        code = totp.parse_code(raw_code)
        if code is None or state.secret_sealed is None:
            return None
        return totp.matching_step(self._secret(state), code, self.core.clock.now(), state.last_step)

    async def _new_code_rows(self) -> tuple[list[str], list[tuple[str, str, str]]]:
        codes = recovery_codes.generate()
        normalized = [recovery_codes.normalize(c) or "" for c in codes]
        hashes = await asyncio.gather(*(self.code_hasher.hash(n) for n in normalized))
        rows = [
            (ulid(), recovery_codes.selector(self._selector_key, n), h) for n, h in zip(normalized, hashes, strict=True)
        ]
        return codes, rows

    async def _check_password(self, state: TotpState, password: str, ctx: common_pb2.RequestContext) -> None:
        candidate = passwords.plausible_login_password(password)
        ok = candidate is not None and await self.core.hasher.verify(state.password_hash, candidate)
        if not ok:
            await self.core.attempts.failed(state.email_normalized, ctx, user_id=state.user_id, reason="bad_password")
            raise DomainError("invalid_credentials", "The password is incorrect.")

    async def _check_totp(self, state: TotpState, code: str, ctx: common_pb2.RequestContext) -> None:
        """A current, unused code of an enabled TOTP (the step is consumed atomically)."""
        step = self._step_for(state, code) if state.enabled else None
        if step is not None:
            async with transaction(self.core.sessionmaker) as session:
                accepted = await self.totp.accept_step(session, state.user_id, step)
            if accepted:
                return
        await self.core.attempts.failed(
            state.email_normalized, ctx, user_id=state.user_id, reason="bad_code", event="auth.mfa_failed"
        )
        raise DomainError("invalid_mfa_code", _WRONG_CODE)

    # -- status and enrollment -------------------------------------------------------------
    async def status(self, user_id: str) -> MfaStatus:
        async with reading(self.core.sessionmaker) as session:
            state = await self.totp.state(session, user_id) if user_id else None
            if state is None:
                raise DomainError("not_found", "User not found")
            remaining = await self.codes.remaining(session, user_id) if state.enabled else 0
        return MfaStatus(state.enabled, remaining)

    async def enroll(self, user_id: str, context: common_pb2.RequestContext | None) -> EnrollmentStart:
        """A new pending secret (replacing an unconfirmed one); refused while TOTP is on."""
        state, user = await self._state(user_id)
        if state.enabled:
            raise conflict("Two-factor authentication is already enabled; disable it first.")
        secret = totp.new_secret()
        sealed = self.keyring.seal(secret.encode(), self._aad(user_id))
        ctx = context or common_pb2.RequestContext()
        async with transaction(self.core.sessionmaker) as session:
            if not await self.totp.set_pending(session, user_id, sealed, self.core.clock.now()):
                raise conflict("Two-factor authentication is already enabled; disable it first.")
            # A new pending secret replaces the previous one: recorded, never the secret itself.
            await self.core.audit.record(
                session, "mfa.enrollment_started", ctx, actor_user_id=user_id, target=("user", user_id)
            )
        self.core._committed()
        uri = totp.provisioning_uri(secret, user.email)
        return EnrollmentStart(secret, uri, totp.qr_svg(uri))

    async def confirm(self, user_id: str, code: str, context: common_pb2.RequestContext | None) -> list[str]:
        ctx = context or common_pb2.RequestContext()
        state, user = await self._state(user_id)
        if state.enabled:
            raise conflict("Two-factor authentication is already enabled.")
        if state.secret_sealed is None:
            raise conflict("Start the enrollment first.")
        step = self._step_for(state, code)
        if step is None:
            raise DomainError("invalid_mfa_code", _WRONG_CODE)
        codes, rows = await self._new_code_rows()
        now = self.core.clock.now()
        async with transaction(self.core.sessionmaker) as session:
            if not await self.totp.enable(session, user_id, state.secret_sealed, step, now):
                raise conflict("Two-factor authentication is already enabled.")  # a concurrent confirm won
            await self.codes.replace_set(session, user_id, rows, now)
            await self.core.audit.record(session, "mfa.enabled", ctx, actor_user_id=user_id, target=("user", user_id))
            mail = security_mail.totp_changed(
                user.email, user.name, self.core.config.public_url, now, ctx.user_agent, ctx.client_ip, enabled=True
            )
            await self.core.mails.stage(session, mail, now)
        self.core._committed(mails=True)
        return codes

    async def disable(self, user_id: str, password: str, code: str, context: common_pb2.RequestContext | None) -> None:
        ctx = context or common_pb2.RequestContext()
        state, user = await self._state(user_id)
        if not state.enabled:
            raise conflict("Two-factor authentication is not enabled.")
        await self.core.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        await self._check_password(state, password, ctx)
        await self._check_totp(state, code, ctx)
        now = self.core.clock.now()
        async with transaction(self.core.sessionmaker) as session:
            if not await self.totp.disable(session, user_id, now):
                raise conflict("Two-factor authentication is not enabled.")
            await self.codes.forget_user(session, user_id)
            await self.core.attempts.forgive_in(session, state.email_normalized, ctx, now)
            await self.core.audit.record(session, "mfa.disabled", ctx, actor_user_id=user_id, target=("user", user_id))
            mail = security_mail.totp_changed(
                user.email, user.name, self.core.config.public_url, now, ctx.user_agent, ctx.client_ip, enabled=False
            )
            await self.core.mails.stage(session, mail, now)
        self.core._committed(mails=True)

    async def regenerate_codes(self, user_id: str, code: str, context: common_pb2.RequestContext | None) -> list[str]:
        ctx = context or common_pb2.RequestContext()
        state, user = await self._state(user_id)
        if not state.enabled:
            raise conflict("Two-factor authentication is not enabled.")
        await self.core.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        await self._check_totp(state, code, ctx)
        codes, rows = await self._new_code_rows()
        now = self.core.clock.now()
        async with transaction(self.core.sessionmaker) as session:
            await self.codes.replace_set(session, user_id, rows, now)
            await self.core.attempts.forgive_in(session, state.email_normalized, ctx, now)
            await self.core.audit.record(
                session, "mfa.recovery_codes_regenerated", ctx, actor_user_id=user_id, target=("user", user_id)
            )
            mail = security_mail.recovery_codes_regenerated(
                user.email, user.name, self.core.config.public_url, now, ctx.user_agent, ctx.client_ip
            )
            await self.core.mails.stage(session, mail, now)
        self.core._committed(mails=True)
        return codes

    # -- login -------------------------------------------------------------------------
    async def start_challenge(
        self, session: object, user_id: str, auth_time: datetime, delivery: str, client: str = ""
    ) -> str:
        """Called inside login's transaction once the password was right."""
        token, token_hash = tokens.new_token()
        now = self.core.clock.now()
        challenge = MfaChallenge(
            token_hash=token_hash,
            user_id=user_id,
            auth_time=auth_time,
            token_delivery=delivery if delivery in DELIVERIES else "cookie",
            failures=0,
            expires_at=now + self.challenge_ttl,
            client=client[:64],
        )
        await self.challenges.add(session, challenge, now)  # type: ignore[arg-type]
        return f"mfa_{token}"

    async def verify(
        self, mfa_token: str, code: str, recovery_code: str, context: common_pb2.RequestContext | None
    ) -> tuple[Authentication, str]:
        """The second step of a login: (authentication, token delivery asked at the first)."""
        core = self.core
        ctx = context or common_pb2.RequestContext()
        token_hash = tokens.presented_hash(mfa_token.removeprefix("mfa_")) if mfa_token.startswith("mfa_") else None
        if token_hash is None:
            raise DomainError("invalid_mfa_code", _DEAD_CHALLENGE)
        now = core.clock.now()
        async with transaction(core.sessionmaker) as session:
            challenge = await self.challenges.live(session, token_hash, MFA_MAX_FAILURES, now)
            # Counted as wrong until proven right, so concurrent guesses stay within the limit.
            if challenge is None or not await self.challenges.reserve_attempt(
                session, token_hash, MFA_MAX_FAILURES, now
            ):
                challenge = None
        if challenge is None:
            raise DomainError("invalid_mfa_code", _DEAD_CHALLENGE)
        state, user = await self._state(challenge.user_id)
        await core.attempts.reserve(state.email_normalized, ctx, user_id=user.id, client=challenge.client)

        used_code_id: str | None = None
        step: int | None = None
        mailed = False  # a code mailed because a security response demanded a second factor
        if recovery_code:
            used_code_id = await self._match_recovery_code(state.user_id, recovery_code)
        else:
            step = self._step_for(state, code) if state.enabled else None
            if not state.enabled and core.holds is not None:
                mailed = await core.holds.mailed_code_matches(token_hash, code)
        if step is None and used_code_id is None and not mailed:
            event = "auth.recovery_code_used" if recovery_code else "auth.mfa_failed"
            await core.attempts.failed(state.email_normalized, ctx, user_id=user.id, reason="bad_code", event=event)
            raise DomainError("invalid_mfa_code", _WRONG_CODE)

        now = core.clock.now()
        remaining = 0
        async with transaction(core.sessionmaker) as session:
            if step is not None:
                accepted = await self.totp.accept_step(session, user.id, step)
            elif used_code_id is not None:
                accepted = await self.codes.use(session, used_code_id, now)
            else:
                accepted = mailed  # single use: consuming the challenge below ends its code
            if accepted:
                accepted = await self.challenges.consume(session, token_hash)
            if accepted:
                amr = ["pwd", "rec"] if used_code_id is not None else ["pwd", "otp"]
                if core.holds is not None:
                    await core.holds.second_factor_passed(session, user.id, token_hash)
                if used_code_id is not None:
                    remaining = await self.codes.remaining(session, user.id)
                    await core.audit.record(
                        session,
                        "auth.recovery_code_used",
                        ctx,
                        actor_user_id=user.id,
                        target=("user", user.id),
                        details={"remaining": remaining},
                    )
                    mail = security_mail.recovery_code_used(
                        user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, remaining
                    )
                    await core.mails.stage(session, mail, now)
                else:
                    await core.audit.record(
                        session, "auth.mfa_succeeded", ctx, actor_user_id=user.id, target=("user", user.id)
                    )
                await core.audit.record(
                    session,
                    "auth.login_succeeded",
                    ctx,
                    actor_user_id=user.id,
                    target=("user", user.id),
                    details={"amr": amr, "mfa_required": True},
                )
                fresh = await core.users.get(session, user.id)
                assert fresh is not None
                team = await core.teams.get(session, fresh.last_active_team_id) if fresh.last_active_team_id else None
                await core.attempts.forgive_in(session, state.email_normalized, ctx, now, client=challenge.client)
        if not accepted:
            # A replayed code, or a concurrent request with the same code or token won.
            await core.attempts.failed(
                state.email_normalized, ctx, user_id=user.id, reason="replay", event="auth.mfa_failed"
            )
            raise DomainError("invalid_mfa_code", _WRONG_CODE)
        core._committed(mails=used_code_id is not None)
        auth = Authentication(
            user=fresh,
            amr=amr,
            auth_time=challenge.auth_time,
            active_team=team,
            device_token=device_tokens.issue(core.config.secret, state.email_normalized),
        )
        return auth, challenge.token_delivery

    async def _match_recovery_code(self, user_id: str, raw: str) -> str | None:
        """The id of the unused code matching `raw`: at most one argon2id verification."""
        normalized = recovery_codes.normalize(raw)
        if normalized is None:
            return None
        selector = recovery_codes.selector(self._selector_key, normalized)
        async with reading(self.core.sessionmaker) as session:
            candidates = await self.codes.candidates(session, user_id, selector)
        for candidate in candidates[:1]:
            if await self.code_hasher.verify(candidate.code_hash, normalized):
                return candidate.id
        return None

    # -- step-up -----------------------------------------------------------------------
    async def reauthenticate(
        self, user_id: str, password: str, code: str, context: common_pb2.RequestContext | None
    ) -> tuple[list[str], datetime]:
        """Password (and a current TOTP code when TOTP is on): the new amr and auth_time."""
        ctx = context or common_pb2.RequestContext()
        state, _user = await self._state(user_id)
        await self.core.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        await self._check_password(state, password, ctx)
        amr = ["pwd"]
        if state.enabled:
            await self._check_totp(state, code, ctx)
            amr.append("otp")
        now = self.core.clock.now()
        async with transaction(self.core.sessionmaker) as session:
            await self.core.attempts.forgive_in(session, state.email_normalized, ctx, now)
            await self.core.audit.record(
                session,
                "auth.reauthenticated",
                ctx,
                actor_user_id=user_id,
                target=("user", user_id),
                details={"amr": amr},
            )
        self.core._committed()
        return amr, now
