"""Account-security tables and repositories: password reset tokens, MFA login challenges,
TOTP state and recovery codes. Every single-use secret is claimed by a conditional statement,
so concurrent uses give exactly one success on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import UtcDateTime
from services.identity.adapters.sql import metadata, users

# One live reset token per user: a newer one replaces the row, a password change deletes it.
password_resets = Table(
    "password_resets",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# The state between the password step and the second factor of a login.
mfa_challenges = Table(
    "mfa_challenges",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("auth_time", UtcDateTime, nullable=False),
    Column("token_delivery", String(8), nullable=False),
    # The lockout client of the password step: the IP, or "device:<id>" for a device cookie.
    Column("client", String(64), nullable=False),
    Column("failures", Integer, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("selector", String(16), nullable=False),
    Column("code_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)
Index("ix_recovery_codes_user_selector", recovery_codes.c.user_id, recovery_codes.c.selector)


@dataclass(frozen=True)
class MfaChallenge:
    token_hash: str
    user_id: str
    auth_time: datetime
    token_delivery: str
    failures: int
    expires_at: datetime
    client: str = ""


@dataclass(frozen=True)
class TotpState:
    """Privileged: the sealed secret and the replay guard."""

    user_id: str
    email: str
    email_normalized: str
    password_hash: str
    secret_sealed: bytes | None
    enabled: bool
    last_step: int | None


@dataclass(frozen=True)
class StoredRecoveryCode:
    id: str
    code_hash: str


class PasswordResetRepository:
    async def replace(
        self, session: AsyncSession, user_id: str, token_hash: str, expires_at: datetime, now: datetime
    ) -> None:
        """The new token invalidates any older one of the user."""
        await session.execute(delete(password_resets).where(password_resets.c.user_id == user_id))
        await session.execute(
            insert(password_resets).values(
                user_id=user_id, token_hash=token_hash, expires_at=expires_at, created_at=now
            )
        )

    async def user_for(self, session: AsyncSession, token_hash: str, now: datetime) -> str | None:
        query = select(password_resets.c.user_id).where(
            password_resets.c.token_hash == token_hash, password_resets.c.expires_at > now
        )
        row = (await session.execute(query)).first()
        return str(row.user_id) if row else None

    async def claim(self, session: AsyncSession, token_hash: str, now: datetime) -> str | None:
        """Use a token: the user id for exactly one concurrent caller, else None."""
        row = (
            await session.execute(
                select(password_resets.c.user_id).where(
                    password_resets.c.token_hash == token_hash, password_resets.c.expires_at > now
                )
            )
        ).first()
        if row is None:
            return None
        result = await session.execute(
            delete(password_resets).where(
                password_resets.c.token_hash == token_hash, password_resets.c.expires_at > now
            )
        )
        return str(row.user_id) if result.rowcount == 1 else None

    async def forget_user(self, session: AsyncSession, user_id: str) -> None:
        await session.execute(delete(password_resets).where(password_resets.c.user_id == user_id))


class MfaChallengeRepository:
    async def add(self, session: AsyncSession, challenge: MfaChallenge, now: datetime) -> None:
        await session.execute(delete(mfa_challenges).where(mfa_challenges.c.expires_at <= now))
        await session.execute(
            insert(mfa_challenges).values(
                token_hash=challenge.token_hash,
                user_id=challenge.user_id,
                auth_time=challenge.auth_time,
                token_delivery=challenge.token_delivery,
                client=challenge.client,
                failures=challenge.failures,
                expires_at=challenge.expires_at,
                created_at=now,
            )
        )

    async def live(
        self, session: AsyncSession, token_hash: str, max_failures: int, now: datetime
    ) -> MfaChallenge | None:
        c = mfa_challenges.c
        row = (
            await session.execute(
                select(mfa_challenges).where(c.token_hash == token_hash, c.expires_at > now, c.failures < max_failures)
            )
        ).first()
        if row is None:
            return None
        return MfaChallenge(
            row.token_hash, row.user_id, row.auth_time, row.token_delivery, row.failures, row.expires_at, row.client
        )

    async def reserve_attempt(self, session: AsyncSession, token_hash: str, max_failures: int, now: datetime) -> bool:
        """Count this attempt as wrong before checking it (forgiven by `consume`), so
        concurrent guesses never exceed `max_failures`."""
        c = mfa_challenges.c
        result = await session.execute(
            update(mfa_challenges)
            .where(c.token_hash == token_hash, c.expires_at > now, c.failures < max_failures)
            .values(failures=c.failures + 1)
        )
        return result.rowcount == 1

    async def consume(self, session: AsyncSession, token_hash: str) -> bool:
        result = await session.execute(delete(mfa_challenges).where(mfa_challenges.c.token_hash == token_hash))
        return result.rowcount == 1

    async def forget_user(self, session: AsyncSession, user_id: str) -> None:
        await session.execute(delete(mfa_challenges).where(mfa_challenges.c.user_id == user_id))


class TotpRepository:
    """Privileged: the only reader of TOTP secrets."""

    async def state(self, session: AsyncSession, user_id: str) -> TotpState | None:
        u = users.c
        row = (
            await session.execute(
                select(
                    u.id,
                    u.email,
                    u.email_normalized,
                    u.password_hash,
                    u.totp_secret_encrypted,
                    u.totp_enabled_at,
                    u.totp_last_step,
                ).where(u.id == user_id)
            )
        ).first()
        if row is None:
            return None
        return TotpState(
            user_id=row.id,
            email=row.email,
            email_normalized=row.email_normalized,
            password_hash=row.password_hash,
            secret_sealed=row.totp_secret_encrypted,
            enabled=row.totp_enabled_at is not None,
            last_step=row.totp_last_step,
        )

    async def set_pending(self, session: AsyncSession, user_id: str, sealed: bytes, now: datetime) -> bool:
        """A new pending secret, unless TOTP is already on."""
        result = await session.execute(
            update(users)
            .where(users.c.id == user_id, users.c.totp_enabled_at.is_(None))
            .values(totp_secret_encrypted=sealed, totp_last_step=None, updated_at=now)
        )
        return result.rowcount == 1

    async def enable(self, session: AsyncSession, user_id: str, sealed: bytes, step: int, now: datetime) -> bool:
        """Turn the pending secret on; exactly one of two concurrent confirmations wins."""
        result = await session.execute(
            update(users)
            .where(
                users.c.id == user_id,
                users.c.totp_enabled_at.is_(None),
                users.c.totp_secret_encrypted == sealed,
            )
            .values(totp_enabled_at=now, totp_last_step=step, updated_at=now)
        )
        return result.rowcount == 1

    async def accept_step(self, session: AsyncSession, user_id: str, step: int) -> bool:
        """Record `step` as used; False when it (or a later one) was accepted already."""
        u = users.c
        result = await session.execute(
            update(users)
            .where(
                u.id == user_id,
                u.totp_enabled_at.is_not(None),
                or_(u.totp_last_step.is_(None), u.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        return result.rowcount == 1

    async def disable(self, session: AsyncSession, user_id: str, now: datetime) -> bool:
        result = await session.execute(
            update(users)
            .where(users.c.id == user_id, users.c.totp_enabled_at.is_not(None))
            .values(totp_secret_encrypted=None, totp_enabled_at=None, totp_last_step=None, updated_at=now)
        )
        return result.rowcount == 1

    async def sealed_secrets(self, session: AsyncSession) -> list[Any]:
        query = select(users.c.id, users.c.totp_secret_encrypted).where(users.c.totp_secret_encrypted.is_not(None))
        return list((await session.execute(query)).all())

    async def replace_sealed(self, session: AsyncSession, user_id: str, old: bytes, new: bytes) -> bool:
        result = await session.execute(
            update(users)
            .where(users.c.id == user_id, users.c.totp_secret_encrypted == old)
            .values(totp_secret_encrypted=new)
        )
        return result.rowcount == 1


class RecoveryCodeRepository:
    async def replace_set(
        self, session: AsyncSession, user_id: str, codes: list[tuple[str, str, str]], now: datetime
    ) -> None:
        """(id, selector, hash) rows become the user's only set; the old set stops working."""
        await session.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
        if codes:
            await session.execute(
                insert(recovery_codes),
                [
                    {"id": i, "user_id": user_id, "selector": sel, "code_hash": h, "created_at": now, "used_at": None}
                    for i, sel, h in codes
                ],
            )

    async def candidates(self, session: AsyncSession, user_id: str, selector: str) -> list[StoredRecoveryCode]:
        c = recovery_codes.c
        rows = (
            await session.execute(
                select(c.id, c.code_hash).where(c.user_id == user_id, c.selector == selector, c.used_at.is_(None))
            )
        ).all()
        return [StoredRecoveryCode(r.id, r.code_hash) for r in rows]

    async def use(self, session: AsyncSession, code_id: str, now: datetime) -> bool:
        """Mark a code used; exactly one concurrent caller (and none after a regeneration) wins."""
        c = recovery_codes.c
        result = await session.execute(
            update(recovery_codes).where(and_(c.id == code_id, c.used_at.is_(None))).values(used_at=now)
        )
        return result.rowcount == 1

    async def remaining(self, session: AsyncSession, user_id: str) -> int:
        c = recovery_codes.c
        query = select(func.count()).select_from(recovery_codes).where(c.user_id == user_id, c.used_at.is_(None))
        return int((await session.execute(query)).scalar_one())

    async def forget_user(self, session: AsyncSession, user_id: str) -> None:
        await session.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))


class SecurityThrottleRepository:
    """What a password reset clears besides the account counter: every client's lock."""

    async def clear_clients(self, session: AsyncSession, account_key: str, now: datetime) -> None:
        from services.identity.adapters.sql import login_clients

        await session.execute(
            update(login_clients)
            .where(login_clients.c.account_key == account_key)
            .values(failures=0, locked_until=None, updated_at=now)
        )


class PasswordRepository:
    async def set_password(self, session: AsyncSession, user_id: str, password_hash: str, now: datetime) -> bool:
        result = await session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash, password_changed_at=now, updated_at=now)
        )
        return result.rowcount == 1
