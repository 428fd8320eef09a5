"""The MFA step of a login and re-authentication (step-up).

The login's MFA step lives in an `mfa_challenges` row (5 minutes by default, dies after 5 wrong
codes); wrong codes also count toward the account lockout.
"""

from __future__ import annotations

from datetime import datetime

from deelrx.common.v1 import common_pb2
from deelrx_kit import device_tokens
from deelrx_kit.errors import DomainError
from services.identity.domain import security_mail, tokens
from services.identity.domain.model import Authentication
from services.identity.ports import MfaChallenge, Tx
from services.identity.use_cases.account_holds import AccountHolds
from services.identity.use_cases.second_factor import WRONG_CODE, SecondFactor

MFA_MAX_FAILURES = 5
DELIVERIES = ("cookie", "body")
_DEAD_CHALLENGE = "This sign-in attempt has expired or failed too often; sign in again."


class MfaLogin:
    def __init__(self, factor: SecondFactor, holds: AccountHolds) -> None:
        self.factor = factor
        self.holds = holds
        self.core = factor.core
        self.attempts = factor.attempts

    async def start_challenge(self, tx: Tx, user_id: str, auth_time: datetime, delivery: str, client: str = "") -> str:
        """Called inside login's transaction once the password was right."""
        token, token_hash = tokens.new_token()
        now = self.core.clock.now()
        challenge = MfaChallenge(
            token_hash=token_hash,
            user_id=user_id,
            auth_time=auth_time,
            token_delivery=delivery if delivery in DELIVERIES else "cookie",
            failures=0,
            expires_at=now + self.core.config.mfa_challenge_ttl,
            client=client[:64],
        )
        await self.core.stores.challenges.add(tx, challenge, now)
        return f"mfa_{token}"

    async def _reserve_challenge(self, token_hash: str) -> MfaChallenge:
        """Counted as wrong until proven right, so concurrent guesses stay within the limit."""
        now = self.core.clock.now()
        challenges = self.core.stores.challenges
        async with self.core.db.transaction() as tx:
            challenge = await challenges.live(tx, token_hash, MFA_MAX_FAILURES, now)
            if challenge is None or not await challenges.reserve_attempt(tx, token_hash, MFA_MAX_FAILURES, now):
                challenge = None
        if challenge is None:
            raise DomainError("invalid_mfa_code", _DEAD_CHALLENGE)
        return challenge

    async def verify(
        self, mfa_token: str, code: str, recovery_code: str, context: common_pb2.RequestContext | None
    ) -> tuple[Authentication, str]:
        """The second step of a login: (authentication, token delivery asked at the first)."""
        core, stores = self.core, self.core.stores
        ctx = context or common_pb2.RequestContext()
        token_hash = tokens.presented_hash(mfa_token.removeprefix("mfa_")) if mfa_token.startswith("mfa_") else None
        if token_hash is None:
            raise DomainError("invalid_mfa_code", _DEAD_CHALLENGE)
        challenge = await self._reserve_challenge(token_hash)
        state, user = await self.factor.state(challenge.user_id)
        await self.attempts.reserve(state.email_normalized, ctx, user_id=user.id, client=challenge.client)

        used_code_id: str | None = None
        step: int | None = None
        mailed = False  # a code mailed because a security response demanded a second factor
        if recovery_code:
            used_code_id = await self.factor.match_recovery_code(state.user_id, recovery_code)
        else:
            step = self.factor.step_for(state, code) if state.enabled else None
            if not state.enabled:
                mailed = await self.holds.mailed_code_matches(token_hash, code)
        if step is None and used_code_id is None and not mailed:
            event = "auth.recovery_code_used" if recovery_code else "auth.mfa_failed"
            await self.attempts.failed(state.email_normalized, ctx, user_id=user.id, reason="bad_code", event=event)
            raise DomainError("invalid_mfa_code", WRONG_CODE)

        now = core.clock.now()
        async with core.db.transaction() as tx:
            if step is not None:
                accepted = await stores.totp.accept_step(tx, user.id, step)
            elif used_code_id is not None:
                accepted = await stores.recovery_codes.use(tx, used_code_id, now)
            else:
                accepted = mailed  # single use: consuming the challenge below ends its code
            if accepted:
                accepted = await stores.challenges.consume(tx, token_hash)
            if accepted:
                amr = ["pwd", "rec"] if used_code_id is not None else ["pwd", "otp"]
                await self.holds.second_factor_passed(tx, user.id, token_hash)
                if used_code_id is not None:
                    remaining = await stores.recovery_codes.remaining(tx, user.id)
                    await core.user_event(tx, "auth.recovery_code_used", ctx, user.id, details={"remaining": remaining})
                    mail = security_mail.recovery_code_used(
                        user.email, user.name, core.config.public_url, now, ctx.user_agent, ctx.client_ip, remaining
                    )
                    await stores.mails.stage(tx, mail, now)
                else:
                    await core.user_event(tx, "auth.mfa_succeeded", ctx, user.id)
                details = {"amr": amr, "mfa_required": True}
                await core.user_event(tx, "auth.login_succeeded", ctx, user.id, details=details)
                fresh = await stores.users.get(tx, user.id)
                assert fresh is not None
                team = await stores.teams.get(tx, fresh.last_active_team_id) if fresh.last_active_team_id else None
                await self.attempts.forgive_in(tx, state.email_normalized, ctx, now, client=challenge.client)
        if not accepted:
            # A replayed code, or a concurrent request with the same code or token won.
            await self.attempts.failed(
                state.email_normalized, ctx, user_id=user.id, reason="replay", event="auth.mfa_failed"
            )
            raise DomainError("invalid_mfa_code", WRONG_CODE)
        core.committed(mails=used_code_id is not None)
        assert fresh is not None
        auth = Authentication(
            user=fresh,
            amr=amr,
            auth_time=challenge.auth_time,
            active_team=team,
            device_token=device_tokens.issue(core.config.secret, state.email_normalized),
        )
        return auth, challenge.token_delivery

    async def reauthenticate(
        self, user_id: str, password: str, code: str, context: common_pb2.RequestContext | None
    ) -> tuple[list[str], datetime]:
        """Password (and a current TOTP code when TOTP is on): the new amr and auth_time."""
        ctx = context or common_pb2.RequestContext()
        state, _user = await self.factor.state(user_id)
        await self.attempts.reserve(state.email_normalized, ctx, user_id=user_id)
        await self.factor.check_password(state, password, ctx)
        amr = ["pwd"]
        if state.enabled:
            await self.factor.check_totp(state, code, ctx)
            amr.append("otp")
        now = self.core.clock.now()
        async with self.core.db.transaction() as tx:
            await self.attempts.forgive_in(tx, state.email_normalized, ctx, now)
            await self.core.user_event(tx, "auth.reauthenticated", ctx, user_id, details={"amr": amr})
        self.core.committed()
        return amr, now
