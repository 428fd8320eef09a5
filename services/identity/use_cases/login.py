"""Login (the password step) and its lockout.

Each attempt is first counted as a failure for (client, account) and for the account, then
forgiven when the password was right, so concurrent guesses cannot exceed the limits. Unknown
addresses get the same counters, answers and (dummy-hash) timing as known ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deelrx.common.v1 import common_pb2
from deelrx_kit import device_tokens
from deelrx_kit.errors import DomainError
from services.identity.domain import lockout, passwords, security_mail
from services.identity.domain.accounts import lookup_key
from services.identity.domain.model import Authentication, Credentials, Team
from services.identity.ports import Tx
from services.identity.use_cases.account_holds import AccountHolds
from services.identity.use_cases.attempts import reserve_in
from services.identity.use_cases.core import Core
from services.identity.use_cases.mfa_login import MfaLogin

_INVALID_CREDENTIALS = "The email or password is incorrect."
_LOCKED = "Too many failed logins; try again later or reset your password."


class Login:
    def __init__(self, core: Core, mfa: MfaLogin, holds: AccountHolds) -> None:
        self.core = core
        self.mfa = mfa
        self.holds = holds

    async def authenticate(
        self,
        email: str,
        password: str,
        context: common_pb2.RequestContext | None = None,
        token_delivery: str = "cookie",  # noqa: S107 - a delivery mode, not a secret
        device_token: str = "",
    ) -> Authentication:
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        email_normalized = lookup_key(email)
        key = core.address_key(email_normalized)
        # A device that signed in to this account before is its own client: locks earned by
        # other clients (per IP, or the account-wide one) do not apply to it.
        device = device_tokens.device_for(core.config.secret, device_token, email_normalized)
        client = f"device:{device}" if device else (ctx.client_ip or "unknown")[:64]
        now = core.clock.now()

        # Count the attempt as a failure first (forgiven below when right), so concurrent
        # guesses can never get past the limits.
        mailed = False
        async with core.db.transaction() as tx:
            credentials = await stores.credentials.by_email(tx, email_normalized)
            # A hold placed by a security response (account_holds.py) answers like the lockout.
            known = credentials.user_id if credentials else None
            held = None if device else await self.holds.locked_until(tx, known, email_normalized, now)
            if held is not None:
                locked: lockout.Lockout | None = lockout.hold_lockout(held, now)
            else:
                locked = await reserve_in(core, tx, key, client, now)
            if locked is not None:
                await self._failed(tx, ctx, credentials, email_normalized, "locked", lock=locked.scope)
                mailed = credentials is not None and await self._lock_notice(tx, ctx, credentials.user_id, key, now)
        if locked is not None:
            core.committed(mails=mailed)
            raise DomainError("account_locked", _LOCKED, retry_after_seconds=locked.retry_after_seconds)

        candidate = passwords.plausible_login_password(password)
        if credentials is None:
            reason = await self._check_pending_signup(email_normalized, candidate)
            async with core.db.transaction() as tx:
                await self._failed(tx, ctx, None, email_normalized, reason)
            core.committed()
            if reason == "email_not_verified":
                raise DomainError("email_not_verified", "Confirm your email address first; check your inbox.")
            raise DomainError("invalid_credentials", _INVALID_CREDENTIALS)

        if candidate is None:
            ok = await core.hasher.verify_dummy(password)
        else:
            ok = await core.hasher.verify(credentials.password_hash, candidate)
        if not ok:
            async with core.db.transaction() as tx:
                await self._failed(tx, ctx, credentials, email_normalized, "bad_password")
            core.committed()
            raise DomainError("invalid_credentials", _INVALID_CREDENTIALS)

        assert candidate is not None
        new_hash = await core.hasher.hash(candidate) if core.hasher.needs_rehash(credentials.password_hash) else None
        auth_time = core.clock.now()
        mfa_token = ""
        code_mailed = False
        team: Team | None = None
        async with core.db.transaction() as tx:
            if new_hash is not None:
                await stores.credentials.rehash(tx, credentials.user_id, credentials.password_hash, new_hash, auth_time)
            user = await stores.users.get(tx, credentials.user_id)
            assert user is not None
            # A security response may demand a second factor at this login (account_holds.py).
            demanded = await self.holds.mfa_required(tx, user.id)
            if user.mfa_enabled or demanded:
                # The failure counted above stands until the second factor is right, so a
                # known password does not buy unlimited code guesses.
                mfa_token = await self.mfa.start_challenge(tx, user.id, auth_time, token_delivery, client)
                if not user.mfa_enabled:
                    await self.holds.mail_login_code(tx, user, mfa_token, ctx, auth_time)
                    code_mailed = True
                factor = "totp" if user.mfa_enabled else "email_code"
                verified = {"mfa_required": True, "factor": factor}
                await core.user_event(tx, "auth.password_verified", ctx, user.id, details=verified)
            else:
                # Account row before client row, as when reserving: no lock-order deadlock.
                await stores.login_throttle.reset_account(tx, key, auth_time)
                await stores.login_throttle.forgive_client(tx, key, client, auth_time)
                team = await stores.teams.get(tx, user.last_active_team_id) if user.last_active_team_id else None
                details = {"amr": ["pwd"], "mfa_required": False}
                await core.user_event(tx, "auth.login_succeeded", ctx, user.id, details=details)
        core.committed(mails=code_mailed)
        if mfa_token:
            return Authentication(
                user=user, amr=["pwd"], auth_time=auth_time, active_team=None, mfa_required=True, mfa_token=mfa_token
            )
        return Authentication(
            user=user,
            amr=["pwd"],
            auth_time=auth_time,
            active_team=team,
            device_token=device_tokens.issue(core.config.secret, email_normalized),
        )

    async def _lock_notice(self, tx: Tx, ctx: common_pb2.RequestContext, user_id: str, key: str, now: datetime) -> bool:
        """Tell the owner (at most once per lock period) and offer the reset that unlocks."""
        stores = self.core.stores
        if not await stores.mail_throttle.claim(tx, "account_locked", key, lockout.CLIENT_LOCK, now):
            return False
        user = await stores.users.get(tx, user_id)
        if user is None:
            return False
        notice = security_mail.account_locked(
            user.email, user.name, self.core.config.public_url, now, ctx.user_agent, ctx.client_ip
        )
        await stores.mails.stage(tx, notice, now)
        return True

    async def _check_pending_signup(self, email_normalized: str, candidate: str | None) -> str:
        """One argon2 verification either way, so unknown and pending addresses take alike."""
        core = self.core
        async with core.db.reading() as tx:
            signup = await core.stores.signups.latest_live(tx, email_normalized, core.clock.now())
        if signup is None or candidate is None:
            await core.hasher.verify_dummy(candidate or "")
            return "unknown_account"
        if await core.hasher.verify(signup.password_hash, candidate):
            return "email_not_verified"
        return "unknown_account"

    async def _failed(
        self,
        tx: Tx,
        context: common_pb2.RequestContext,
        credentials: Credentials | None,
        email_normalized: str,
        reason: str,
        **details: str,
    ) -> None:
        if credentials is not None:
            who: dict[str, Any] = {"actor_user_id": credentials.user_id, "target": ("user", credentials.user_id)}
        else:
            who = {"subject_hash": self.core.subject_hash(email_normalized)}
        await self.core.event(
            tx, "auth.login_failed", context, outcome="failure", details={"reason": reason, **details}, **who
        )
