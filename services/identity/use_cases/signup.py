"""Sign-up and email verification.

A sign-up is stored *pending* with the SHA-256 of its link's token; the account exists only
once the link is used. Answers and work are the same whether or not the address has an account.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy.exc import IntegrityError

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError, validation_error
from deelrx_kit.ids import new_id
from services.identity.domain import mail, passwords, tokens
from services.identity.domain.accounts import check_name, parse_email
from services.identity.use_cases.core import Core

log = structlog.get_logger(__name__)

RESEND_INTERVAL = timedelta(seconds=60)
# Live sign-ups kept per address; older ones die when a new one arrives.
MAX_PENDING_SIGNUPS_PER_ADDRESS = 5
_INVALID_TOKEN = "This link is invalid or has expired."


class Signup:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def start(
        self, email: str, password: str, name: str, context: common_pb2.RequestContext | None = None
    ) -> None:
        """Same answer and the same work (one argon2 hash) whether or not the address has an account."""
        core, stores = self.core, self.core.stores
        address = parse_email(email)
        clean_name = check_name(name)
        clean_password = passwords.check_password(password, address.normalized)
        password_hash = await core.hasher.hash(clean_password)
        now = core.clock.now()
        key = core.address_key(address.normalized)
        async with core.db.transaction() as tx:
            existing = await stores.users.by_email(tx, address.normalized)
            if existing is not None:
                if await stores.mail_throttle.claim(tx, "account_notice", key, RESEND_INTERVAL, now):
                    notice = mail.existing_account_notice(existing.email, existing.name, core.config.public_url)
                    await stores.mails.stage(tx, notice, now)
            else:
                await stores.signups.delete_expired(tx, now, address.normalized)
                token, token_hash = tokens.new_token()
                await stores.signups.add(
                    tx,
                    signup_id=new_id("sgn"),
                    email=address.display,
                    email_normalized=address.normalized,
                    name=clean_name,
                    password_hash=password_hash,
                    token_hash=token_hash,
                    expires_at=now + core.config.email_token_ttl,
                    now=now,
                )
                await stores.signups.keep_newest(tx, address.normalized, MAX_PENDING_SIGNUPS_PER_ADDRESS)
                # At most one verification mail per address per interval, so sign-ups cannot be
                # used to flood a third party; the throttle also covers resends.
                if await stores.mail_throttle.claim(tx, "verification", key, RESEND_INTERVAL, now):
                    await stores.mails.stage(tx, self._verification_mail(address.display, clean_name, token), now)
        core.committed(events=False, mails=True)

    def _verification_mail(self, to: str, name: str, token: str) -> mail.OutgoingMail:
        ttl_hours = int(self.core.config.email_token_ttl.total_seconds() // 3600)
        return mail.verification_mail(to, name, self.core.config.public_url, token, ttl_hours)

    async def verify_email(
        self, token: str, context: common_pb2.RequestContext | None = None, password: str = ""
    ) -> str:
        """Create the account of the sign-up whose link this is. Single-use under concurrency.

        When the address has more than one live sign-up (someone else may have signed up with
        it), the link also needs the password chosen at its own sign-up, so a link never creates
        an account whose password the person clicking it does not know."""
        core, stores = self.core, self.core.stores
        token_hash = tokens.presented_hash(token)
        if token_hash is None:
            raise DomainError("invalid_token", _INVALID_TOKEN)
        now = core.clock.now()
        async with core.db.reading() as tx:
            clicked = await stores.signups.by_token(tx, token_hash)
            live = await stores.signups.count_live(tx, clicked.email_normalized, now) if clicked else 0
        if clicked is not None and live > 1:
            candidate = passwords.plausible_login_password(password) if password else None
            if candidate is None or not await core.hasher.verify(clicked.password_hash, candidate):
                raise validation_error(
                    "/password", "Several sign-ups use this address: enter the password you chose when signing up."
                )
        try:
            async with core.db.transaction() as tx:
                signup = await stores.signups.by_token(tx, token_hash)
                if signup is None or signup.expires_at <= now:
                    raise DomainError("invalid_token", _INVALID_TOKEN)
                await stores.signups.lock_address(tx, signup.email_normalized)
                if not await stores.signups.claim(tx, signup.id, token_hash):
                    raise DomainError("invalid_token", _INVALID_TOKEN)  # a concurrent use won
                if await stores.users.email_taken(tx, signup.email_normalized):
                    raise DomainError("invalid_token", _INVALID_TOKEN)  # another link of the address won
                user = await stores.users.create_verified(tx, user_id=new_id("usr"), signup=signup, now=now)
                await stores.signups.delete_for_address(tx, signup.email_normalized)
                # Proving control of the mailbox clears the failures counted against the address.
                await stores.login_throttle.reset_account(tx, core.address_key(signup.email_normalized), now)
                await core.user_event(tx, "user.signed_up", context, user.id)
                await core.user_event(tx, "user.email_verified", context, user.id)
        except IntegrityError as exc:
            # Two links of one address used at once: the unique email lets only one account exist.
            raise DomainError("invalid_token", _INVALID_TOKEN) from exc
        core.committed()
        log.info("user_signed_up", user_id=user.id)
        return user.id

    async def resend_verification(self, email: str, context: common_pb2.RequestContext | None = None) -> None:
        """Always succeeds; mails a fresh link only to a pending sign-up, at most once per interval."""
        core, stores = self.core, self.core.stores
        try:
            address = parse_email(email)
        except DomainError:
            return  # docs/api.md: 202 always; a malformed address cannot have a pending sign-up
        now = core.clock.now()
        async with core.db.transaction() as tx:
            if await stores.users.email_taken(tx, address.normalized):
                return
            signup = await stores.signups.latest_live(tx, address.normalized, now)
            if signup is None:
                return
            sent = False
            if await stores.mail_throttle.claim(
                tx, "verification", core.address_key(address.normalized), RESEND_INTERVAL, now
            ):
                token, token_hash = tokens.new_token()
                # The old link of this sign-up stops working: only the newest token hash is stored.
                await stores.signups.rotate_token(tx, signup.id, token_hash, now + core.config.email_token_ttl)
                await stores.mails.stage(tx, self._verification_mail(signup.email, signup.name, token), now)
                sent = True
            # No account exists yet: recorded under the keyed hash of the address, like the other
            # requests about an address without an account.
            await core.event(
                tx,
                "user.verification_resent",
                context,
                subject_hash=core.subject_hash(address.normalized),
                details={"mailed": sent},
            )
        core.committed(mails=sent)
