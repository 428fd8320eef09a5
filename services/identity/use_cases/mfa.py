"""TOTP enrolment, its removal, and recovery codes (checks in second_factor.py)."""

from __future__ import annotations

from dataclasses import dataclass

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError, conflict
from services.identity.domain import security_mail, totp
from services.identity.use_cases.second_factor import WRONG_CODE, SecondFactor

_ALREADY_ON = "Two-factor authentication is already enabled; disable it first."


@dataclass(frozen=True)
class EnrollmentStart:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True)
class MfaStatus:
    totp_enabled: bool
    recovery_codes_remaining: int


class Mfa:
    def __init__(self, factor: SecondFactor) -> None:
        self.factor = factor
        self.core = factor.core
        self.attempts = factor.attempts

    async def status(self, user_id: str) -> MfaStatus:
        stores = self.core.stores
        async with self.core.db.reading() as tx:
            state = await stores.totp.state(tx, user_id) if user_id else None
            if state is None:
                raise DomainError("not_found", "User not found")
            remaining = await stores.recovery_codes.remaining(tx, user_id) if state.enabled else 0
        return MfaStatus(state.enabled, remaining)

    async def enroll(self, user_id: str, context: common_pb2.RequestContext | None) -> EnrollmentStart:
        """A new pending secret (replacing an unconfirmed one); refused while TOTP is on."""
        state, user = await self.factor.state(user_id)
        if state.enabled:
            raise conflict(_ALREADY_ON)
        secret = totp.new_secret()
        sealed = self.factor.seal(user_id, secret)
        async with self.core.db.transaction() as tx:
            if not await self.core.stores.totp.set_pending(tx, user_id, sealed, self.core.clock.now()):
                raise conflict(_ALREADY_ON)
            # A new pending secret replaces the previous one: recorded, never the secret itself.
            await self.core.user_event(tx, "mfa.enrollment_started", context, user_id)
        self.core.committed()
        uri = totp.provisioning_uri(secret, user.email)
        return EnrollmentStart(secret, uri, totp.qr_svg(uri))

    async def confirm(self, user_id: str, code: str, context: common_pb2.RequestContext | None) -> list[str]:
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        state, user = await self.factor.state(user_id)
        if state.enabled:
            raise conflict("Two-factor authentication is already enabled.")
        if state.secret_sealed is None:
            raise conflict("Start the enrollment first.")
        step = self.factor.step_for(state, code)
        if step is None:
            raise DomainError("invalid_mfa_code", WRONG_CODE)
        codes, rows = await self.factor.new_code_rows()
        now = core.clock.now()
        async with core.db.transaction() as tx:
            if not await stores.totp.enable(tx, user_id, state.secret_sealed, step, now):
                raise conflict("Two-factor authentication is already enabled.")  # a concurrent confirm won
            await stores.recovery_codes.replace_set(tx, user_id, rows, now)
            await core.user_event(tx, "mfa.enabled", ctx, user_id)
            mail = security_mail.totp_changed(
                user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, enabled=True
            )
            await stores.mails.stage(tx, mail, now)
        core.committed(mails=True)
        return codes

    async def disable(self, user_id: str, password: str, code: str, context: common_pb2.RequestContext | None) -> None:
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        state, user = await self.factor.state(user_id)
        if not state.enabled:
            raise conflict("Two-factor authentication is not enabled.")
        await self.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        await self.factor.check_password(state, password, ctx)
        await self.factor.check_totp(state, code, ctx)
        now = core.clock.now()
        async with core.db.transaction() as tx:
            if not await stores.totp.disable(tx, user_id, now):
                raise conflict("Two-factor authentication is not enabled.")
            await stores.recovery_codes.forget_user(tx, user_id)
            await self.attempts.forgive_in(tx, state.email_normalized, ctx, now)
            await core.user_event(tx, "mfa.disabled", ctx, user_id)
            mail = security_mail.totp_changed(
                user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, enabled=False
            )
            await stores.mails.stage(tx, mail, now)
        core.committed(mails=True)

    async def regenerate_codes(self, user_id: str, code: str, context: common_pb2.RequestContext | None) -> list[str]:
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        state, user = await self.factor.state(user_id)
        if not state.enabled:
            raise conflict("Two-factor authentication is not enabled.")
        await self.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        await self.factor.check_totp(state, code, ctx)
        codes, rows = await self.factor.new_code_rows()
        now = core.clock.now()
        async with core.db.transaction() as tx:
            await stores.recovery_codes.replace_set(tx, user_id, rows, now)
            await self.attempts.forgive_in(tx, state.email_normalized, ctx, now)
            await core.user_event(tx, "mfa.recovery_codes_regenerated", ctx, user_id)
            mail = security_mail.recovery_codes_regenerated(
                user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip
            )
            await stores.mails.stage(tx, mail, now)
        core.committed(mails=True)
        return codes
