"""Password forgot / reset / change (use cases; transactions begin here).

Reset tokens: 256 random bits, only their SHA-256 stored, one live token per user (a newer one
replaces it), 30 minutes, claimed by a conditional DELETE so concurrent uses give one success,
and deleted by any password change. A reset clears every lockout counter of the account; the
caller (the gateway) revokes the sessions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from deelrx.common.v1 import common_pb2
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError
from services.identity.adapters.security_sql import (
    MfaChallengeRepository,
    PasswordRepository,
    PasswordResetRepository,
    SecurityThrottleRepository,
    TotpRepository,
)
from services.identity.domain import passwords, security_mail, tokens
from services.identity.domain.accounts import parse_email

if TYPE_CHECKING:
    from services.identity.app import IdentityApp

log = structlog.get_logger(__name__)

RESET_TTL = timedelta(minutes=security_mail.RESET_TTL_MINUTES)
RESET_MAIL_INTERVAL = timedelta(seconds=60)
_INVALID_RESET = "This reset link is invalid, used or expired; ask for a new one."
_WRONG_CURRENT = "The current password is incorrect."


class PasswordUseCases:
    def __init__(self, core: IdentityApp) -> None:
        self.core = core
        self.resets = PasswordResetRepository()
        self.passwords = PasswordRepository()
        self.challenges = MfaChallengeRepository()
        self.throttle = SecurityThrottleRepository()
        self.private = TotpRepository()

    async def request_reset(self, email: str, context: common_pb2.RequestContext | None) -> None:
        """202 always: the same work and answer whether or not the address has an account."""
        core = self.core
        ctx = context or common_pb2.RequestContext()
        try:
            address = parse_email(email)
        except DomainError:
            return
        token, token_hash = tokens.new_token()
        now = core.clock.now()
        key = core._address_key(address.normalized)
        sent = False
        async with transaction(core.sessionmaker) as session:
            user = await core.users.by_email(session, address.normalized)
            if user is None:
                await core.audit.record(
                    session,
                    "password.reset_requested",
                    ctx,
                    outcome="failure",
                    subject_hash=core._subject_hash(address.normalized),
                    details={"reason": "unknown_account"},
                )
            elif await core.mail_throttle.claim(session, "password_reset", key, RESET_MAIL_INTERVAL, now):
                await self.resets.replace(session, user.id, token_hash, now + RESET_TTL, now)
                mail = security_mail.password_reset_link(
                    user.email, user.name, core.config.public_url, token, now, ctx.user_agent, ctx.client_ip
                )
                await core.mails.stage(session, mail, now)
                await core.audit.record(
                    session, "password.reset_requested", ctx, actor_user_id=user.id, target=("user", user.id)
                )
                sent = True
        core._committed(mails=sent)

    async def reset(self, token: str, new_password: str, context: common_pb2.RequestContext | None) -> str:
        core = self.core
        ctx = context or common_pb2.RequestContext()
        token_hash = tokens.presented_hash(token)
        if token_hash is None:
            raise DomainError("invalid_token", _INVALID_RESET)
        async with reading(core.sessionmaker) as session:
            user_id = await self.resets.user_for(session, token_hash, core.clock.now())
            user = await core.users.get(session, user_id) if user_id else None
        if user is None:
            raise DomainError("invalid_token", _INVALID_RESET)
        # Check and hash before using the token, so a refused password does not spend the link.
        clean = passwords.check_password(new_password, user.email.lower())
        new_hash = await core.hasher.hash(clean)
        now = core.clock.now()
        async with transaction(core.sessionmaker) as session:
            if await self.resets.claim(session, token_hash, now) != user.id:
                raise DomainError("invalid_token", _INVALID_RESET)  # used, replaced or expired meanwhile
            await self.passwords.set_password(session, user.id, new_hash, now)
            await self.challenges.forget_user(session, user.id)
            # A reset proves control of the mailbox: every lock of the account ends.
            state = await self.private.state(session, user.id)
            assert state is not None
            key = core._address_key(state.email_normalized)
            await core.throttle.reset_account(session, key, now)
            await self.throttle.clear_clients(session, key, now)
            if core.holds is not None:
                await core.holds.release_lock(session, user.id)
            await core.audit.record(session, "password.reset", ctx, actor_user_id=user.id, target=("user", user.id))
            mail = security_mail.password_changed(
                user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, reset=True
            )
            await core.mails.stage(session, mail, now)
        core._committed(mails=True)
        log.info("password_reset", user_id=user.id)
        return user.id

    async def change(
        self, user_id: str, current_password: str, new_password: str, context: common_pb2.RequestContext | None
    ) -> None:
        """Needs the current password (counted toward the lockout like a login)."""
        core = self.core
        ctx = context or common_pb2.RequestContext()
        async with reading(core.sessionmaker) as session:
            state = await self.private.state(session, user_id) if user_id else None
            user = await core.users.get(session, user_id) if state else None
        if state is None or user is None:
            raise DomainError("unauthenticated")
        await core.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        candidate = passwords.plausible_login_password(current_password)
        ok = candidate is not None and await core.hasher.verify(state.password_hash, candidate)
        if not ok:
            await core.attempts.failed(state.email_normalized, ctx, user_id=user_id, reason="bad_current_password")
            raise DomainError("invalid_credentials", _WRONG_CURRENT)
        clean = passwords.check_password(new_password, state.email_normalized)
        new_hash = await core.hasher.hash(clean)
        now = core.clock.now()
        async with transaction(core.sessionmaker) as session:
            if not await core.credentials.replace_hash(session, user_id, state.password_hash, new_hash, now):
                raise DomainError("conflict", "The password changed meanwhile; try again.")
            await self.passwords.set_password(session, user_id, new_hash, now)
            await self.resets.forget_user(session, user_id)
            await core.attempts.forgive_in(session, state.email_normalized, ctx, now)
            await core.audit.record(session, "password.changed", ctx, actor_user_id=user_id, target=("user", user_id))
            mail = security_mail.password_changed(
                user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, reset=False
            )
            await core.mails.stage(session, mail, now)
        core._committed(mails=True)

    async def notify_new_device(
        self, user_id: str, device_label: str, context: common_pb2.RequestContext | None
    ) -> None:
        """Mail the owner about a sign-in from a new device, except for the account's very first."""
        core = self.core
        ctx = context or common_pb2.RequestContext()
        now = core.clock.now()
        async with transaction(core.sessionmaker) as session:
            user = await core.users.get(session, user_id) if user_id else None
            if user is None:
                raise DomainError("not_found", "User not found")
            key = core._address_key(user.email.lower())
            # The first sign-in ever is on a new device by definition: remembered, not mailed.
            first = await core.mail_throttle.claim(session, "first_sign_in", key, timedelta(days=36500), now)
            if not first:
                label = device_label[:200] or ctx.user_agent
                mail = security_mail.new_device(
                    user.email, user.name, core.config.public_url, now, label, ctx.client_ip
                )
                await core.mails.stage(session, mail, now)
        core._committed(events=False, mails=not first)
