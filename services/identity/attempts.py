"""Failed-attempt accounting shared by every check of a known account's secrets after login's
password step: MFA codes, recovery codes, re-authentication, the current password at a change.

Like login, an attempt is counted as a failure *before* the secret is checked and forgiven when
it was right, so concurrent guesses never get past the limits of domain/lockout.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx_kit.db import transaction
from deelrx_kit.errors import DomainError
from services.identity.domain import lockout

if TYPE_CHECKING:
    from services.identity.app import IdentityApp

_LOCKED = "Too many failed attempts; try again later or reset your password."


def _client(ctx: common_pb2.RequestContext, client: str = "") -> str:
    return client or (ctx.client_ip or "unknown")[:64]


def is_device(client: str) -> bool:
    """A device-cookie client: not subject to the account-wide lock other clients earn."""
    return client.startswith("device:")


class AttemptGuard:
    def __init__(self, core: IdentityApp) -> None:
        self.core = core

    async def reserve(
        self, email_normalized: str, ctx: common_pb2.RequestContext, *, user_id: str, client: str = ""
    ) -> None:
        """Count one failure for (client, account) and the account; raise when locked.
        `client` overrides the request's IP (the MFA step uses its password step's client)."""
        core = self.core
        key = core._address_key(email_normalized)
        now = core.clock.now()
        who = _client(ctx, client)
        locked: lockout.Lockout | None = None
        async with transaction(core.sessionmaker) as session:
            if not is_device(who) and not await core.throttle.reserve_account(session, key, lockout.ACCOUNT_LIMIT, now):
                locked = lockout.account_lockout()
            elif not await core.throttle.reserve_client(
                session, key, who, lockout.CLIENT_LIMIT, lockout.CLIENT_LOCK, now
            ):
                if not is_device(who):
                    await core.throttle.release_account(session, key, now)
                locked = lockout.client_lockout(await core.throttle.client_locked_until(session, key, who), now)
            if locked is not None:
                await core.audit.record(
                    session,
                    "auth.login_failed",
                    ctx,
                    outcome="failure",
                    actor_user_id=user_id,
                    target=("user", user_id),
                    details={"reason": "locked", "lock": locked.scope},
                )
        if locked is not None:
            core._committed()
            raise DomainError("account_locked", _LOCKED, retry_after_seconds=locked.retry_after_seconds)

    async def failed(
        self, email_normalized: str, ctx: common_pb2.RequestContext, *, user_id: str, reason: str, event: str = ""
    ) -> None:
        """The reserved failure stands; record it."""
        core = self.core
        async with transaction(core.sessionmaker) as session:
            await core.audit.record(
                session,
                event or "auth.login_failed",
                ctx,
                outcome="failure",
                actor_user_id=user_id,
                target=("user", user_id),
                details={"reason": reason},
            )
        core._committed()

    async def forgive_in(
        self,
        session: AsyncSession,
        email_normalized: str,
        ctx: common_pb2.RequestContext,
        now: datetime,
        client: str = "",
    ) -> None:
        """The secret was right: the client's and the account's failure counts start again.
        Call it last in the transaction."""
        core = self.core
        key = core._address_key(email_normalized)
        # Same order as `reserve` (account row, then client row), after the caller's own
        # writes: concurrent transactions take the rows in one order and cannot deadlock.
        await core.throttle.reset_account(session, key, now)
        await core.throttle.forgive_client(session, key, _client(ctx, client), now)
