"""The checks of a known account's second factor that enrolment, login and step-up share.

TOTP secrets are stored only sealed (AES-256-GCM through the keyring, bound to the user id). A
code is accepted once: the last accepted time step is stored by a conditional UPDATE, so two
concurrent requests with one code give one success. Wrong codes count toward the lockout.
"""

from __future__ import annotations

import asyncio

import structlog

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from deelrx_kit.ids import ulid
from deelrx_kit.keyring import KeyringError
from deelrx_kit.keys import RECOVERY_CODE_SELECTOR, derive_key
from services.identity.domain import passwords, recovery_codes, totp
from services.identity.domain.model import User
from services.identity.ports import PasswordHasher, SecretSealer, TotpState
from services.identity.use_cases.attempts import AttemptGuard
from services.identity.use_cases.core import Core

log = structlog.get_logger(__name__)

WRONG_CODE = "The code is not valid."


def totp_aad(user_id: str) -> bytes:
    """What a sealed TOTP secret is bound to (services/identity/reencrypt.py binds the same)."""
    return f"totp:{user_id}".encode()


class SecondFactor:
    def __init__(
        self, core: Core, attempts: AttemptGuard, *, sealer: SecretSealer, code_hasher: PasswordHasher
    ) -> None:
        self.core = core
        self.attempts = attempts
        self.sealer = sealer
        self.code_hasher = code_hasher
        self._selector_key = derive_key(core.config.secret, RECOVERY_CODE_SELECTOR)

    def seal(self, user_id: str, secret: str) -> bytes:
        return self.sealer.seal(secret.encode(), totp_aad(user_id))

    def _secret(self, state: TotpState) -> str:
        assert state.secret_sealed is not None
        try:
            return self.sealer.open(state.secret_sealed, totp_aad(state.user_id)).decode()
        except KeyringError:
            log.error("totp_secret_unreadable", user_id=state.user_id)
            raise DomainError("unavailable", "Two-factor authentication cannot be checked right now.") from None

    async def state(self, user_id: str) -> tuple[TotpState, User]:
        """The account's TOTP state and profile; `unauthenticated` for an unknown user."""
        async with self.core.db.reading() as tx:
            state = await self.core.stores.totp.state(tx, user_id) if user_id else None
            user = await self.core.stores.users.get(tx, user_id) if state else None
        if state is None or user is None:
            raise DomainError("unauthenticated")
        return state, user

    def step_for(self, state: TotpState, raw_code: str) -> int | None:
        """The time step `raw_code` belongs to, if it is a current code not used before."""
        code = totp.parse_code(raw_code)
        if code is None or state.secret_sealed is None:
            return None
        return totp.matching_step(self._secret(state), code, self.core.clock.now(), state.last_step)

    async def new_code_rows(self) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Fresh recovery codes (shown once) and their (id, selector, hash) rows."""
        codes = recovery_codes.generate()
        normalized = [recovery_codes.normalize(c) or "" for c in codes]
        hashes = await asyncio.gather(*(self.code_hasher.hash(n) for n in normalized))
        rows = [
            (ulid(), recovery_codes.selector(self._selector_key, n), h) for n, h in zip(normalized, hashes, strict=True)
        ]
        return codes, rows

    async def match_recovery_code(self, user_id: str, raw: str) -> str | None:
        """The id of the unused code matching `raw`: at most one argon2id verification."""
        normalized = recovery_codes.normalize(raw)
        if normalized is None:
            return None
        selector = recovery_codes.selector(self._selector_key, normalized)
        async with self.core.db.reading() as tx:
            candidates = await self.core.stores.recovery_codes.candidates(tx, user_id, selector)
        for candidate in candidates[:1]:
            if await self.code_hasher.verify(candidate.code_hash, normalized):
                return candidate.id
        return None

    async def check_password(self, state: TotpState, password: str, ctx: common_pb2.RequestContext) -> None:
        candidate = passwords.plausible_login_password(password)
        ok = candidate is not None and await self.core.hasher.verify(state.password_hash, candidate)
        if not ok:
            await self.attempts.failed(state.email_normalized, ctx, user_id=state.user_id, reason="bad_password")
            raise DomainError("invalid_credentials", "The password is incorrect.")

    async def check_totp(self, state: TotpState, code: str, ctx: common_pb2.RequestContext) -> None:
        """A current, unused code of an enabled TOTP (the step is consumed atomically)."""
        step = self.step_for(state, code) if state.enabled else None
        if step is not None:
            async with self.core.db.transaction() as tx:
                accepted = await self.core.stores.totp.accept_step(tx, state.user_id, step)
            if accepted:
                return
        await self.attempts.failed(
            state.email_normalized, ctx, user_id=state.user_id, reason="bad_code", event="auth.mfa_failed"
        )
        raise DomainError("invalid_mfa_code", WRONG_CODE)
