"""Failed-attempt accounting shared by every check of a known account's secrets after login's
password step: MFA codes, recovery codes, re-authentication, the current password at a change.

Like login, an attempt is counted as a failure *before* the secret is checked and forgiven when
it was right, so concurrent guesses never get past the limits of domain/lockout.py.
"""

from __future__ import annotations

from datetime import datetime

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.identity.domain import lockout
from services.identity.ports import Tx
from services.identity.use_cases.core import Core

_LOCKED = "Too many failed attempts; try again later or reset your password."


def client_of(ctx: common_pb2.RequestContext, client: str = "") -> str:
    return client or (ctx.client_ip or "unknown")[:64]


def is_device(client: str) -> bool:
    """A device-cookie client: not subject to the account-wide lock other clients earn."""
    return client.startswith("device:")


async def reserve_in(core: Core, tx: Tx, key: str, client: str, now: datetime) -> lockout.Lockout | None:
    """Count one failure for (client, account) and, unless a known device, the account.
    None when within the limits; the lock that applies otherwise."""
    throttle = core.stores.login_throttle
    if not is_device(client) and not await throttle.reserve_account(tx, key, lockout.ACCOUNT_LIMIT, now):
        return lockout.account_lockout()
    if not await throttle.reserve_client(tx, key, client, lockout.CLIENT_LIMIT, lockout.CLIENT_LOCK, now):
        if not is_device(client):
            await throttle.release_account(tx, key, now)
        return lockout.client_lockout(await throttle.client_locked_until(tx, key, client), now)
    return None


class AttemptGuard:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def reserve(
        self, email_normalized: str, ctx: common_pb2.RequestContext, *, user_id: str, client: str = ""
    ) -> None:
        """Count one failure for (client, account) and the account; raise when locked.
        `client` overrides the request's IP (the MFA step uses its password step's client)."""
        core = self.core
        key = core.address_key(email_normalized)
        async with core.db.transaction() as tx:
            locked = await reserve_in(core, tx, key, client_of(ctx, client), core.clock.now())
            if locked is not None:
                details = {"reason": "locked", "lock": locked.scope}
                await core.user_event(tx, "auth.login_failed", ctx, user_id, outcome="failure", details=details)
        if locked is not None:
            core.committed()
            raise DomainError("account_locked", _LOCKED, retry_after_seconds=locked.retry_after_seconds)

    async def failed(
        self, email_normalized: str, ctx: common_pb2.RequestContext, *, user_id: str, reason: str, event: str = ""
    ) -> None:
        """The reserved failure stands; record it."""
        async with self.core.db.transaction() as tx:
            await self.core.user_event(
                tx, event or "auth.login_failed", ctx, user_id, outcome="failure", details={"reason": reason}
            )
        self.core.committed()

    async def forgive_in(
        self, tx: Tx, email_normalized: str, ctx: common_pb2.RequestContext, now: datetime, client: str = ""
    ) -> None:
        """The secret was right: the client's and the account's failure counts start again.
        Call it last in the transaction."""
        key = self.core.address_key(email_normalized)
        # Same order as `reserve` (account row, then client row), after the caller's own
        # writes: concurrent transactions take the rows in one order and cannot deadlock.
        await self.core.stores.login_throttle.reset_account(tx, key, now)
        await self.core.stores.login_throttle.forgive_client(tx, key, client_of(ctx, client), now)
