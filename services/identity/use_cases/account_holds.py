"""Automatic responses to security alerts that identity carries out (asked by the detector),
and the places login consults them.

- `lock`: the account's password logins answer `account_locked` (with `Retry-After`) until
  the lock ends by itself; a password reset ends it at once, as it ends the lockout.
- `require_mfa`: the next successful password login must pass a second factor: TOTP for a
  user who has it, else a six-digit code mailed to the verified address, checked by the same
  second step (`VerifyMfa`). The flag clears when that step succeeds.
- `notify_owners`: a notice to the owners of one team (no evidence, no secret).

Each is idempotent per alert (the (alert, action) pairs applied are claimed in the same
transaction as the change), and each is an audit event staged in that transaction.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import not_found, validation_error
from deelrx_kit.ids import has_prefix
from deelrx_kit.keys import derive_key
from services.identity.domain import alert_mail, tokens
from services.identity.domain.model import User
from services.identity.ports import Tx
from services.identity.use_cases.core import Core

log = structlog.get_logger(__name__)

MAX_LOCK = timedelta(days=7)
MAX_OWNERS = 50
MAIL_CODE_KEY = "mfa-mail-code"  # HKDF purpose of the key that hashes mailed codes


def _reason(reason: str) -> str:
    clean = reason.strip()[:64]
    if not clean or not clean.isprintable():
        raise validation_error("/reason", "A short printable reason is required.")
    return clean


def _alert(alert_id: str) -> str:
    if not has_prefix(alert_id, "alr"):
        raise validation_error("/alert_id", "An alert id (alr_...) is required.")
    return alert_id


class AccountHolds:
    def __init__(self, core: Core, *, code_ttl: timedelta) -> None:
        self.core = core
        self.code_ttl = code_ttl
        self.holds = core.stores.holds
        self._code_key = derive_key(core.config.secret, MAIL_CODE_KEY)

    # -- responses ------------------------------------------------------------------------
    async def lock(
        self,
        alert_id: str,
        user_id: str,
        subject_hash: str,
        until: datetime,
        reason: str,
        context: common_pb2.RequestContext | None = None,
    ) -> bool:
        core, stores = self.core, self.core.stores
        _alert(alert_id)
        why = _reason(reason)
        if bool(user_id) == bool(subject_hash):
            raise validation_error("/user_id", "Name the account by exactly one of user_id or subject_hash.")
        if subject_hash and (len(subject_hash) > 90 or not subject_hash.startswith("hmac-sha256:")):
            raise validation_error("/subject_hash", "Not an identifier hash.")
        now = core.clock.now()
        if until <= now or until - now > MAX_LOCK:
            raise validation_error("/until", "The lock must end in the future, within 7 days.")
        mailed = False
        async with core.db.transaction() as tx:
            user = await stores.users.get(tx, user_id) if user_id else None
            if user_id and user is None:
                raise not_found("User not found")
            if not await self.holds.claim_response(tx, alert_id, "lock_account", now):
                return False
            account = f"user:{user_id}" if user_id else f"subject:{subject_hash}"
            await self.holds.lock(tx, account, until, why, now)
            await core.event(
                tx,
                "auth.account_locked",
                context,
                # Like the lockout's auth.login_failed, filed under the account concerned, so its
                # owner sees it in their own security activity.
                actor_user_id=user_id,
                target=("user", user_id) if user_id else None,
                subject_hash=subject_hash,
                details={"reason": why, "alert_id": alert_id, "until": until.isoformat(), "scope": "hold"},
            )
            if user is not None:
                notice = alert_mail.account_held(user.email, user.name, core.config.public_url, until)
                await stores.mails.stage(tx, notice, now)
                mailed = True
        core.committed(mails=mailed)
        log.info("account_held", alert_id=alert_id, user_id=user_id, until=until.isoformat())
        return True

    async def require_mfa(
        self, alert_id: str, user_id: str, reason: str, context: common_pb2.RequestContext | None = None
    ) -> bool:
        core = self.core
        _alert(alert_id)
        why = _reason(reason)
        now = core.clock.now()
        async with core.db.transaction() as tx:
            if not user_id or await core.stores.users.get(tx, user_id) is None:
                raise not_found("User not found")
            if not await self.holds.claim_response(tx, alert_id, "require_mfa", now):
                return False
            await self.holds.require_mfa(tx, f"user:{user_id}", why, now)
            details = {"reason": why, "alert_id": alert_id}
            await core.user_event(tx, "auth.mfa_step_required", context, user_id, details=details)
        core.committed()
        return True

    async def notify_owners(
        self,
        alert_id: str,
        team_id: str,
        owner_user_ids: Sequence[str],
        rule: str,
        severity: str,
        raised_at: datetime,
        context: common_pb2.RequestContext | None = None,
    ) -> int:
        core, stores = self.core, self.core.stores
        _alert(alert_id)
        if not has_prefix(team_id, "tm"):
            raise validation_error("/team_id", "A team id (tm_...) is required.")
        if len(owner_user_ids) > MAX_OWNERS:
            raise validation_error("/owner_user_ids", f"At most {MAX_OWNERS} owners.")
        if rule not in alert_mail.RULE_TITLES:
            raise validation_error("/rule", "Unknown rule.")
        now = core.clock.now()
        mailed = 0
        async with core.db.transaction() as tx:
            if not await self.holds.claim_response(tx, alert_id, f"notify_owners:{team_id}", now):
                return 0
            team = await stores.teams.get(tx, team_id)
            team_name = team.name if team is not None else team_id
            for owner_id in dict.fromkeys(owner_user_ids):
                owner = await stores.users.get(tx, owner_id) if has_prefix(owner_id, "usr") else None
                if owner is None or not owner.email_verified:
                    continue
                notice = alert_mail.owners_notice(
                    owner.email, owner.name, core.config.public_url, team_name, rule, severity[:20], raised_at
                )
                await stores.mails.stage(tx, notice, now)
                mailed += 1
            await core.event(
                tx,
                "security.owners_notified",
                context,
                team_id=team_id,
                target=("alert", alert_id),
                details={"rule": rule, "alert_id": alert_id, "owners_mailed": mailed},
            )
        core.committed(mails=mailed > 0)
        return mailed

    # -- login ----------------------------------------------------------------------------
    async def locked_until(self, tx: Tx, user_id: str | None, email_normalized: str, now: datetime) -> datetime | None:
        """The end of a hold on the login's account (known user, or the address's keyed hash)."""
        accounts = [f"subject:{self.core.subject_hash(email_normalized)}"]
        if user_id:
            accounts.append(f"user:{user_id}")
        return await self.holds.locked_until(tx, accounts, now)

    async def mfa_required(self, tx: Tx, user_id: str) -> bool:
        return await self.holds.mfa_required(tx, f"user:{user_id}")

    def _code_hash(self, challenge_hash: str, code: str) -> str:
        return hmac.new(self._code_key, f"{challenge_hash}:{code}".encode(), hashlib.sha256).hexdigest()

    async def mail_login_code(
        self, tx: Tx, user: User, mfa_token: str, ctx: common_pb2.RequestContext, now: datetime
    ) -> None:
        """Inside login's transaction, after the challenge was started: mail its code."""
        challenge_hash = tokens.presented_hash(mfa_token.removeprefix("mfa_"))
        assert challenge_hash is not None
        code = alert_mail.new_login_code()
        await self.holds.add_mail_code(tx, challenge_hash, self._code_hash(challenge_hash, code), now + self.code_ttl)
        mail = alert_mail.login_code(
            user.email, user.name, self.core.config.public_url, code, self.code_ttl, now, ctx.user_agent, ctx.client_ip
        )
        await self.core.stores.mails.stage(tx, mail, now)

    async def mailed_code_matches(self, challenge_hash: str, code: str) -> bool:
        digits = "".join(code.split())
        if len(digits) != alert_mail.CODE_DIGITS or not digits.isascii() or not digits.isdigit():
            return False
        async with self.core.db.reading() as tx:
            stored = await self.holds.mail_code(tx, challenge_hash, self.core.clock.now())
        return stored is not None and hmac.compare_digest(stored, self._code_hash(challenge_hash, digits))

    async def second_factor_passed(self, tx: Tx, user_id: str, challenge_hash: str) -> None:
        """Inside the second step's transaction: the demand is met."""
        await self.holds.clear_mfa(tx, f"user:{user_id}", self.core.clock.now())
        await self.holds.drop_mail_code(tx, challenge_hash)

    async def release_lock(self, tx: Tx, user_id: str) -> None:
        """A password reset ends a hold as it ends the lockout (it proves the mailbox)."""
        await self.holds.release_lock(tx, f"user:{user_id}", self.core.clock.now())
