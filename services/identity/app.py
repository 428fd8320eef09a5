"""Identity use cases. The only place transactions begin.

Every business change and its audit event (and any mail) are written in one transaction:
events go through the kit outbox to JetStream, mails through `mail_outbox` to the mailer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx.common.v1 import common_pb2
from deelrx_kit import audit_events, device_tokens
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError, not_found, validation_error
from deelrx_kit.ids import has_prefix, new_id
from deelrx_kit.outbox import Outbox
from deelrx_kit.plans import DEFAULT_PLAN
from services.identity.adapters.sql import (
    CredentialRepository,
    LoginThrottleRepository,
    MailOutboxRepository,
    MailThrottleRepository,
    PendingSignupRepository,
    TeamRepository,
    UserRepository,
)
from services.identity.attempts import AttemptGuard
from services.identity.domain import lockout, mail, passwords, security_mail, tokens
from services.identity.domain.accounts import check_name, check_team_name, lookup_key, parse_email
from services.identity.domain.lockout import Lockout
from services.identity.domain.model import Authentication, Team, TeamSettings, User
from services.identity.password_app import PasswordUseCases
from services.identity.ports import PasswordHasher
from services.identity.purge import keep_newest_signups

if TYPE_CHECKING:
    from services.identity.mfa_app import MfaUseCases

log = structlog.get_logger(__name__)

SOURCE = "identity"
RESEND_INTERVAL = timedelta(seconds=60)
MAX_TEAM_IDS = 200
_INVALID_CREDENTIALS = "The email or password is incorrect."
_LOCKED = "Too many failed logins; try again later or reset your password."
_INVALID_TOKEN = "This link is invalid or has expired."


@dataclass(frozen=True)
class IdentityConfig:
    public_url: str
    email_token_ttl: timedelta
    secret: bytes


class IdentityApp:
    def __init__(
        self,
        *,
        config: IdentityConfig,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        hasher: PasswordHasher,
        outbox: Outbox,
        mail_sent: Callable[[], None],
    ) -> None:
        self.config = config
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.hasher = hasher
        self.outbox = outbox
        self.audit = AuditTrail(outbox, source=SOURCE, clock=clock)
        self._mail_sent = mail_sent
        self.users = UserRepository()
        self.credentials = CredentialRepository()
        self.signups = PendingSignupRepository()
        self.teams = TeamRepository()
        self.throttle = LoginThrottleRepository()
        self.mail_throttle = MailThrottleRepository()
        self.mails = MailOutboxRepository()
        # Account security (password_app.py, mfa_app.py, attempts.py); wired by main.bootstrap.
        self.attempts = AttemptGuard(self)
        self.passwords = PasswordUseCases(self)
        self.mfa: MfaUseCases | None = None

    # -- helpers -----------------------------------------------------------------------
    def _address_key(self, email_normalized: str) -> str:
        return tokens.account_key(self.config.secret, email_normalized)

    def _subject_hash(self, email_normalized: str) -> str:
        return audit_events.keyed_hash(self.config.secret, email_normalized)

    def _committed(self, *, events: bool = True, mails: bool = False) -> None:
        if events:
            self.outbox.notify()
        if mails:
            self._mail_sent()

    # -- sign-up -----------------------------------------------------------------------
    async def start_signup(
        self, email: str, password: str, name: str, context: common_pb2.RequestContext | None = None
    ) -> None:
        """Same answer and the same work (one argon2 hash) whether or not the address has an account."""
        address = parse_email(email)
        clean_name = check_name(name)
        clean_password = passwords.check_password(password, address.normalized)
        password_hash = await self.hasher.hash(clean_password)
        now = self.clock.now()
        key = self._address_key(address.normalized)
        async with transaction(self.sessionmaker) as session:
            existing = await self.users.by_email(session, address.normalized)
            if existing is not None:
                if await self.mail_throttle.claim(session, "account_notice", key, RESEND_INTERVAL, now):
                    notice = mail.existing_account_notice(existing.email, existing.name, self.config.public_url)
                    await self.mails.stage(session, notice, now)
            else:
                await self.signups.delete_expired(session, now, address.normalized)
                token, token_hash = tokens.new_token()
                await self.signups.add(
                    session,
                    signup_id=new_id("sgn"),
                    email=address.display,
                    email_normalized=address.normalized,
                    name=clean_name,
                    password_hash=password_hash,
                    token_hash=token_hash,
                    expires_at=now + self.config.email_token_ttl,
                    now=now,
                )
                await keep_newest_signups(session, address.normalized)
                # At most one verification mail per address per interval, so sign-ups cannot be
                # used to flood a third party; the throttle also covers resends.
                if await self.mail_throttle.claim(session, "verification", key, RESEND_INTERVAL, now):
                    await self.mails.stage(session, self._verification_mail(address.display, clean_name, token), now)
        self._committed(events=False, mails=True)

    def _verification_mail(self, to: str, name: str, token: str) -> mail.OutgoingMail:
        ttl_hours = int(self.config.email_token_ttl.total_seconds() // 3600)
        return mail.verification_mail(to, name, self.config.public_url, token, ttl_hours)

    async def verify_email(
        self, token: str, context: common_pb2.RequestContext | None = None, password: str = ""
    ) -> str:
        """Create the account of the sign-up whose link this is. Single-use under concurrency.

        When the address has more than one live sign-up (someone else may have signed up with
        it), the link also needs the password chosen at its own sign-up, so a link never creates
        an account whose password the person clicking it does not know."""
        token_hash = tokens.presented_hash(token)
        if token_hash is None:
            raise DomainError("invalid_token", _INVALID_TOKEN)
        now = self.clock.now()
        async with reading(self.sessionmaker) as session:
            clicked = await self.signups.by_token(session, token_hash)
            live = await self.signups.count_live(session, clicked.email_normalized, now) if clicked else 0
        if clicked is not None and live > 1:
            candidate = passwords.plausible_login_password(password) if password else None
            if candidate is None or not await self.hasher.verify(clicked.password_hash, candidate):
                raise validation_error(
                    "/password", "Several sign-ups use this address: enter the password you chose when signing up."
                )
        try:
            async with transaction(self.sessionmaker) as session:
                signup = await self.signups.by_token(session, token_hash)
                if signup is None or signup.expires_at <= now:
                    raise DomainError("invalid_token", _INVALID_TOKEN)
                await self.signups.lock_address(session, signup.email_normalized)
                if not await self.signups.claim(session, signup.id, token_hash):
                    raise DomainError("invalid_token", _INVALID_TOKEN)  # a concurrent use won
                if await self.users.email_taken(session, signup.email_normalized):
                    raise DomainError("invalid_token", _INVALID_TOKEN)  # another link of the address won
                user = await self.users.create_verified(session, user_id=new_id("usr"), signup=signup, now=now)
                await self.signups.delete_for_address(session, signup.email_normalized)
                # Proving control of the mailbox clears the failures counted against the address.
                await self.throttle.reset_account(session, self._address_key(signup.email_normalized), now)
                target = ("user", user.id)
                await self.audit.record(session, "user.signed_up", context, actor_user_id=user.id, target=target)
                await self.audit.record(session, "user.email_verified", context, actor_user_id=user.id, target=target)
        except IntegrityError as exc:
            # Two links of one address used at once: the unique email lets only one account exist.
            raise DomainError("invalid_token", _INVALID_TOKEN) from exc
        self._committed()
        log.info("user_signed_up", user_id=user.id)
        return user.id

    async def resend_verification(self, email: str, context: common_pb2.RequestContext | None = None) -> None:
        """Always succeeds; mails a fresh link only to a pending sign-up, at most once per interval."""
        try:
            address = parse_email(email)
        except DomainError:
            return  # docs/api.md: 202 always; a malformed address cannot have a pending sign-up
        now = self.clock.now()
        sent = False
        async with transaction(self.sessionmaker) as session:
            if await self.users.email_taken(session, address.normalized):
                return
            signup = await self.signups.latest_live(session, address.normalized, now)
            if signup is None:
                return
            key = self._address_key(address.normalized)
            if not await self.mail_throttle.claim(session, "verification", key, RESEND_INTERVAL, now):
                return
            token, token_hash = tokens.new_token()
            # The old link of this sign-up stops working: only the newest token hash is stored.
            await self.signups.rotate_token(session, signup.id, token_hash, now + self.config.email_token_ttl)
            await self.mails.stage(session, self._verification_mail(signup.email, signup.name, token), now)
            sent = True
        if sent:
            self._committed(events=False, mails=True)

    # -- login -------------------------------------------------------------------------
    async def authenticate(
        self,
        email: str,
        password: str,
        context: common_pb2.RequestContext | None = None,
        token_delivery: str = "cookie",  # noqa: S107 - a delivery mode, not a secret
        device_token: str = "",
    ) -> Authentication:
        ctx = context or common_pb2.RequestContext()
        email_normalized = lookup_key(email)
        key = self._address_key(email_normalized)
        # A device that signed in to this account before is its own client: locks earned by
        # other clients (per IP, or the account-wide one) do not apply to it.
        device = device_tokens.device_for(self.config.secret, device_token, email_normalized)
        client = f"device:{device}" if device else (ctx.client_ip or "unknown")[:64]
        now = self.clock.now()

        # Count the attempt as a failure first (forgiven below when right), so concurrent
        # guesses can never get past the limits.
        locked: Lockout | None = None
        mailed = False
        async with transaction(self.sessionmaker) as session:
            credentials = await self.credentials.by_email(session, email_normalized)
            if device is None and not await self.throttle.reserve_account(session, key, lockout.ACCOUNT_LIMIT, now):
                locked = lockout.account_lockout()
            elif not await self.throttle.reserve_client(
                session, key, client, lockout.CLIENT_LIMIT, lockout.CLIENT_LOCK, now
            ):
                if device is None:
                    await self.throttle.release_account(session, key, now)
                locked_until = await self.throttle.client_locked_until(session, key, client)
                locked = lockout.client_lockout(locked_until, now)
            if locked is not None:
                await self._login_failed(session, ctx, credentials, email_normalized, "locked", lock=locked.scope)
                mailed = credentials is not None and await self._lock_notice(
                    session, ctx, credentials.user_id, key, now
                )
        if locked is not None:
            self._committed(mails=mailed)
            raise DomainError("account_locked", _LOCKED, retry_after_seconds=locked.retry_after_seconds)

        candidate = passwords.plausible_login_password(password)
        if credentials is None:
            reason = await self._check_pending_signup(email_normalized, candidate)
            async with transaction(self.sessionmaker) as session:
                await self._login_failed(session, ctx, None, email_normalized, reason)
            self._committed()
            if reason == "email_not_verified":
                raise DomainError("email_not_verified", "Confirm your email address first; check your inbox.")
            raise DomainError("invalid_credentials", _INVALID_CREDENTIALS)

        if candidate is None:
            ok = await self.hasher.verify_dummy(password)
        else:
            ok = await self.hasher.verify(credentials.password_hash, candidate)
        if not ok:
            async with transaction(self.sessionmaker) as session:
                await self._login_failed(session, ctx, credentials, email_normalized, "bad_password")
            self._committed()
            raise DomainError("invalid_credentials", _INVALID_CREDENTIALS)

        assert candidate is not None
        new_hash = await self.hasher.hash(candidate) if self.hasher.needs_rehash(credentials.password_hash) else None
        auth_time = self.clock.now()
        mfa_token = ""
        team: Team | None = None
        async with transaction(self.sessionmaker) as session:
            if new_hash is not None:
                await self.credentials.replace_hash(
                    session, credentials.user_id, credentials.password_hash, new_hash, auth_time
                )
            user = await self.users.get(session, credentials.user_id)
            assert user is not None
            if user.mfa_enabled and self.mfa is not None:
                # The failure counted above stands until the second factor is right, so a
                # known password does not buy unlimited code guesses.
                mfa_token = await self.mfa.start_challenge(session, user.id, auth_time, token_delivery, client)
                await self.audit.record(
                    session,
                    "auth.password_verified",
                    ctx,
                    actor_user_id=user.id,
                    target=("user", user.id),
                    details={"mfa_required": True},
                )
            else:
                # Account row before client row, as when reserving: no lock-order deadlock.
                await self.throttle.reset_account(session, key, auth_time)
                await self.throttle.forgive_client(session, key, client, auth_time)
                team = await self.teams.get(session, user.last_active_team_id) if user.last_active_team_id else None
                await self.audit.record(
                    session,
                    "auth.login_succeeded",
                    ctx,
                    actor_user_id=user.id,
                    target=("user", user.id),
                    details={"amr": ["pwd"], "mfa_required": False},
                )
        self._committed()
        if mfa_token:
            return Authentication(
                user=user, amr=["pwd"], auth_time=auth_time, active_team=None, mfa_required=True, mfa_token=mfa_token
            )
        return Authentication(
            user=user,
            amr=["pwd"],
            auth_time=auth_time,
            active_team=team,
            device_token=device_tokens.issue(self.config.secret, email_normalized),
        )

    async def _lock_notice(
        self, session: AsyncSession, ctx: common_pb2.RequestContext, user_id: str, key: str, now: datetime
    ) -> bool:
        """Tell the owner (at most once per lock period) and offer the reset that unlocks."""
        if not await self.mail_throttle.claim(session, "account_locked", key, lockout.CLIENT_LOCK, now):
            return False
        user = await self.users.get(session, user_id)
        if user is None:
            return False
        notice = security_mail.account_locked(
            user.email, user.name, self.config.public_url, now, ctx.user_agent, ctx.client_ip
        )
        await self.mails.stage(session, notice, now)
        return True

    async def _check_pending_signup(self, email_normalized: str, candidate: str | None) -> str:
        """One argon2 verification either way, so unknown and pending addresses take alike."""
        async with reading(self.sessionmaker) as session:
            signup = await self.signups.latest_live(session, email_normalized, self.clock.now())
        if signup is None or candidate is None:
            await self.hasher.verify_dummy(candidate or "")
            return "unknown_account"
        if await self.hasher.verify(signup.password_hash, candidate):
            return "email_not_verified"
        return "unknown_account"

    async def _login_failed(
        self,
        session: AsyncSession,
        context: common_pb2.RequestContext,
        credentials: Any,
        email_normalized: str,
        reason: str,
        **details: str,
    ) -> None:
        if credentials is not None:
            who: dict[str, Any] = {"actor_user_id": credentials.user_id, "target": ("user", credentials.user_id)}
        else:
            who = {"subject_hash": self._subject_hash(email_normalized)}
        await self.audit.record(
            session, "auth.login_failed", context, outcome="failure", details={"reason": reason, **details}, **who
        )

    # -- users and teams ---------------------------------------------------------------
    async def get_user(self, user_id: str) -> User:
        async with reading(self.sessionmaker) as session:
            user = await self.users.get(session, user_id) if user_id else None
        if user is None:
            raise not_found("User not found")
        return user

    async def set_active_team(self, user_id: str, team_id: str) -> Team | None:
        """Remember the team the next login starts in. Membership is rbac's; callers check it."""
        now = self.clock.now()
        async with transaction(self.sessionmaker) as session:
            team = None
            if team_id:
                team = await self.teams.get(session, team_id)
                if team is None:
                    raise not_found("Team not found")
            if not await self.users.set_last_active_team(session, user_id, team_id or None, now):
                raise not_found("User not found")
        return team

    async def get_teams(self, team_ids: Sequence[str]) -> list[Team]:
        if len(team_ids) > MAX_TEAM_IDS:
            raise validation_error("/team_ids", f"Ask for at most {MAX_TEAM_IDS} teams at once.")
        wanted = [i for i in team_ids if has_prefix(i, "tm")]
        async with reading(self.sessionmaker) as session:
            return await self.teams.many(session, wanted)

    async def create_team(
        self, owner_user_id: str, name: str, context: common_pb2.RequestContext | None = None
    ) -> Team:
        """The team record only; making the owner a member is rbac's (called by the orchestrator)."""
        clean_name = check_team_name(name)
        now = self.clock.now()
        team = Team(
            id=new_id("tm"),
            name=clean_name,
            plan=DEFAULT_PLAN,
            billing_email="",
            created_at=now,
            settings=TeamSettings(),
        )
        async with transaction(self.sessionmaker) as session:
            if await self.users.get(session, owner_user_id) is None:
                raise not_found("User not found")
            await self.teams.add(session, team, created_by=owner_user_id)
            await self.users.set_first_active_team(session, owner_user_id, team.id, now)
            await self.audit.record(
                session,
                "team.created",
                context,
                team_id=team.id,
                actor_user_id=owner_user_id,
                target=("team", team.id),
                details={"name": team.name, "plan": team.plan},
            )
        self._committed()
        return team
