"""Password forgot / reset / change.

Reset tokens: 256 random bits, only their SHA-256 stored, one live token per user (a newer one
replaces it), 30 minutes, claimed by a conditional DELETE so concurrent uses give one success,
and deleted by any password change. A reset clears every lockout counter of the account; the
caller (the gateway) revokes the sessions.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.identity.domain import passwords, security_mail, tokens
from services.identity.domain.accounts import parse_email
from services.identity.use_cases.account_holds import AccountHolds
from services.identity.use_cases.attempts import AttemptGuard
from services.identity.use_cases.core import Core

log = structlog.get_logger(__name__)

RESET_TTL = timedelta(minutes=security_mail.RESET_TTL_MINUTES)
RESET_MAIL_INTERVAL = timedelta(seconds=60)
_INVALID_RESET = "This reset link is invalid, used or expired; ask for a new one."
_WRONG_CURRENT = "The current password is incorrect."


class Passwords:
    def __init__(self, core: Core, attempts: AttemptGuard, holds: AccountHolds) -> None:
        self.core = core
        self.attempts = attempts
        self.holds = holds

    async def request_reset(self, email: str, context: common_pb2.RequestContext | None) -> None:
        """202 always: the same work and answer whether or not the address has an account."""
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        try:
            address = parse_email(email)
        except DomainError:
            return
        token, token_hash = tokens.new_token()
        now = core.clock.now()
        key = core.address_key(address.normalized)
        sent = False
        async with core.db.transaction() as tx:
            user = await stores.users.by_email(tx, address.normalized)
            if user is None:
                await core.event(
                    tx,
                    "password.reset_requested",
                    ctx,
                    outcome="failure",
                    subject_hash=core.subject_hash(address.normalized),
                    details={"reason": "unknown_account"},
                )
            elif await stores.mail_throttle.claim(tx, "password_reset", key, RESET_MAIL_INTERVAL, now):
                await stores.resets.replace(tx, user.id, token_hash, now + RESET_TTL, now)
                mail = security_mail.password_reset_link(
                    user.email, user.name, core.config.public_url, token, now, ctx.user_agent, ctx.client_ip
                )
                await stores.mails.stage(tx, mail, now)
                await core.user_event(tx, "password.reset_requested", ctx, user.id)
                sent = True
        core.committed(mails=sent)

    async def reset(self, token: str, new_password: str, context: common_pb2.RequestContext | None) -> str:
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        token_hash = tokens.presented_hash(token)
        if token_hash is None:
            raise DomainError("invalid_token", _INVALID_RESET)
        async with core.db.reading() as tx:
            user_id = await stores.resets.user_for(tx, token_hash, core.clock.now())
            state = await stores.totp.state(tx, user_id) if user_id else None
            user = await stores.users.get(tx, user_id) if user_id else None
        if state is None or user is None:
            raise DomainError("invalid_token", _INVALID_RESET)
        # Check and hash before using the token, so a refused password does not spend the link.
        clean = passwords.check_password(new_password, user.email.lower())
        new_hash = await core.hasher.hash(clean)
        now = core.clock.now()
        async with core.db.transaction() as tx:
            if await stores.resets.claim(tx, token_hash, now) != user.id:
                raise DomainError("invalid_token", _INVALID_RESET)  # used, replaced or expired meanwhile
            await stores.credentials.set_password(tx, user.id, new_hash, now)
            await stores.challenges.forget_user(tx, user.id)
            # A reset proves control of the mailbox: every lock of the account ends.
            key = core.address_key(state.email_normalized)
            await stores.login_throttle.reset_account(tx, key, now)
            await stores.login_throttle.clear_clients(tx, key, now)
            await self.holds.release_lock(tx, user.id)
            await core.user_event(tx, "password.reset", ctx, user.id)
            mail = security_mail.password_changed(
                user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, reset=True
            )
            await stores.mails.stage(tx, mail, now)
        core.committed(mails=True)
        log.info("password_reset", user_id=user.id)
        return user.id

    async def change(
        self, user_id: str, current_password: str, new_password: str, context: common_pb2.RequestContext | None
    ) -> None:
        """Needs the current password (counted toward the lockout like a login)."""
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        async with core.db.reading() as tx:
            state = await stores.totp.state(tx, user_id) if user_id else None
            user = await stores.users.get(tx, user_id) if state else None
        if state is None or user is None:
            raise DomainError("unauthenticated")
        await self.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        candidate = passwords.plausible_login_password(current_password)
        ok = candidate is not None and await core.hasher.verify(state.password_hash, candidate)
        if not ok:
            await self.attempts.failed(state.email_normalized, ctx, user_id=user_id, reason="bad_current_password")
            raise DomainError("invalid_credentials", _WRONG_CURRENT)
        clean = passwords.check_password(new_password, state.email_normalized)
        new_hash = await core.hasher.hash(clean)
        now = core.clock.now()
        async with core.db.transaction() as tx:
            if not await stores.credentials.set_password(tx, user_id, new_hash, now, expected=state.password_hash):
                raise DomainError("conflict", "The password changed meanwhile; try again.")
            await stores.resets.forget_user(tx, user_id)
            await self.attempts.forgive_in(tx, state.email_normalized, ctx, now)
            await core.user_event(tx, "password.changed", ctx, user_id)
            mail = security_mail.password_changed(
                user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, reset=False
            )
            await stores.mails.stage(tx, mail, now)
        core.committed(mails=True)
