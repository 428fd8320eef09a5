"""Revocation: ending sessions on request (logout, the session list, a password change, a
removed member) or on refresh-token reuse, and the recent revocations a starting gateway loads.

A revocation marks the sessions revoked, stages `SessionRevoked` in the same transaction
(outbox, never lost) and, after commit, writes the Redis fallback keys (`announce`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.errors import not_found, validation_error
from deelrx_kit.settings import Settings
from services.sessions.domain.records import RevocationNotice
from services.sessions.events import SessionEvents
from services.sessions.ports import RevocationPublisher, SessionStore, Transactions

# Revocations a starting gateway must know: tokens issued before them may still be unexpired.
REVOCATION_MEMORY_MARGIN = timedelta(seconds=60)


class Revocation:
    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        store: SessionStore,
        revocations: RevocationPublisher,
        events: SessionEvents,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.transactions = transactions
        self.store = store
        self.revocations = revocations
        self.events = events
        self.clock = clock

    async def revoke_in(
        self,
        tx: AsyncSession,
        session_ids: Sequence[str],
        user_id: str,
        reason: str,
        ctx: common_pb2.RequestContext | None,
    ) -> list[str]:
        """Revoke inside the caller's transaction; the caller announces the result after commit."""
        now = self.clock.now()
        revoked = await self.store.revoke(tx, session_ids, now, reason)
        if not revoked:
            return []
        for sid, team_id in revoked:
            await self.events.stage_for(tx, "session.revoked", ctx, sid, user_id, team_id, {"reason": reason})
            if reason == "logout":
                await self.events.stage_for(tx, "auth.logout", ctx, sid, user_id, team_id)
        ids = tuple(sid for sid, _ in revoked)
        await self.revocations.stage(tx, RevocationNotice(ids, user_id, now, reason))
        return list(ids)

    async def announce(self, session_ids: Sequence[str]) -> None:
        """After commit: the fast paths (Redis fallback keys, the outbox relay woken)."""
        await self.revocations.announce(session_ids)

    async def revoke_one(
        self, ctx: common_pb2.RequestContext, session_id: str, owner_user_id: str, reason: str
    ) -> None:
        reason = reason or "unspecified"
        async with self.transactions.writing() as tx:
            session = await self.store.get_session(tx, session_id) if session_id else None
            if session is None or (owner_user_id and session.user_id != owner_user_id):
                raise not_found("Session not found")
            revoked = await self.revoke_in(tx, [session.id], session.user_id, reason, ctx)
        await self.announce(revoked)

    async def revoke_many(
        self,
        ctx: common_pb2.RequestContext,
        user_id: str,
        team_id: str,
        except_session_id: str,
        reason: str,
        *,
        created_before: datetime | None = None,
    ) -> int:
        """`created_before`: only sessions created by then (a login after a password reset lives)."""
        if not user_id:
            raise validation_error("/user_id", "a user id is required")
        reason = reason or "unspecified"
        async with self.transactions.writing() as tx:
            ids = await self.store.live_session_ids(
                tx, user_id, team_id, except_session_id, self.clock.now(), created_before
            )
            revoked = await self.revoke_in(tx, ids, user_id, reason, ctx)
        await self.announce(revoked)
        return len(revoked)

    async def recent(self) -> list[str]:
        window = timedelta(seconds=self.settings.access_token_ttl_seconds) + REVOCATION_MEMORY_MARGIN
        async with self.transactions.reading() as tx:
            return await self.store.revoked_since(tx, self.clock.now() - window)

    async def announce_again_if_behind(self) -> None:
        """A Redis fallback write failed earlier: write the recent revocations again."""
        if self.revocations.behind:
            self.revocations.behind = False
            await self.revocations.announce(await self.recent())
