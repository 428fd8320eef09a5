"""Refresh: rotation on every use, the grace interval for replays, reuse detection.

The session row is locked first and everything is read again under the lock (including the
time), then `domain.refresh_decision.decide` says what the presentation means and this module
carries it out."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import assert_never

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.errors import DomainError
from services.sessions.domain import refresh_decision, refresh_tokens
from services.sessions.domain.devices import parse_device
from services.sessions.domain.records import RefreshTokenRecord, SessionRecord
from services.sessions.domain.refresh_decision import (
    Expired,
    RefreshDecision,
    ReturnGraceSuccessor,
    ReuseDetected,
    Rotate,
)
from services.sessions.events import SessionEvents
from services.sessions.ports import SessionStore, TokenSigner, Transactions
from services.sessions.revocation import Revocation
from services.sessions.tokens import IssuedSession, TokenMint

log = structlog.get_logger(__name__)


class Refresh:
    def __init__(
        self,
        *,
        transactions: Transactions,
        store: SessionStore,
        keys: TokenSigner,
        mint: TokenMint,
        revocation: Revocation,
        events: SessionEvents,
        clock: Clock,
        grace_seconds: int,
    ) -> None:
        self.transactions = transactions
        self.store = store
        self.keys = keys
        self.mint = mint
        self.revocation = revocation
        self.events = events
        self.clock = clock
        self.grace = refresh_tokens.grace_interval(grace_seconds)

    async def _decide(
        self, tx: AsyncSession, token: RefreshTokenRecord, session: SessionRecord, now: datetime
    ) -> RefreshDecision:
        successor = None
        if token.rotated_at is not None and token.successor_hash and token.successor_sealed is not None:
            successor = await self.store.get_refresh_token(tx, token.successor_hash)
        return refresh_decision.decide(
            token=token,
            session=session,
            now=now,
            grace=self.grace,
            successor=successor,
            opened_successor=self.mint.open_successor(token) if successor is not None else None,
        )

    async def refresh(self, ctx: common_pb2.RequestContext, presented: str) -> IssuedSession:
        if not refresh_tokens.plausible(presented):
            raise DomainError("unauthenticated")
        signer = await self.keys.signer()
        token_hash = refresh_tokens.hash_token(presented)
        async with self.transactions.writing() as tx:
            token = await self.store.get_refresh_token(tx, token_hash)
            session = await self.store.get_session(tx, token.session_id, for_update=True) if token else None
            if token is None or session is None:
                raise DomainError("unauthenticated")
            # Read again under the session lock: a concurrent refresh may have rotated it meanwhile.
            token = await self.store.get_refresh_token(tx, token_hash)
            assert token is not None
            # The time is read under the lock too: read before it, a request that waited behind a
            # concurrent rotation would judge itself as older than that rotation and take its
            # successor even with no grace at all (found by tests/security/test_races.py).
            now = self.clock.now()
            decision = await self._decide(tx, token, session, now)
            issued: str | None = None
            if isinstance(decision, Rotate):
                issued = await self.mint.rotate_from(tx, session, token)
                if issued is None:
                    # Lost a race with a concurrent refresh of the same token (the session lock
                    # should prevent it; kept as a safety net): decide again on what it is now.
                    log.info("refresh_rotation_raced", session_id=session.id)
                    again = await self.store.get_refresh_token(tx, token_hash)
                    decision = await self._decide(tx, again, session, now) if again else ReuseDetected(None)
                    if isinstance(decision, Rotate):
                        raise DomainError("unavailable", "Concurrent refresh; try again")
                else:
                    await self.events.stage(tx, "session.refreshed", ctx, session)
            match decision:
                case Expired():
                    raise DomainError("session_expired")
                case ReuseDetected(generation=generation):
                    await self.events.stage(
                        tx, "session.refresh_reuse_detected", ctx, session, {"generation": generation}, "failure"
                    )
                    await self.revocation.revoke_in(tx, [session.id], session.user_id, "refresh_token_reuse", ctx)
                case ReturnGraceSuccessor(successor=issued):
                    log.info("refresh_replay_in_grace", session_id=session.id)
                    # The successor is handed out again: a client retrying, or a stolen token
                    # raced against its owner. Recorded with where it came from.
                    replayer = await asyncio.to_thread(parse_device, ctx.user_agent[:512])
                    details = refresh_decision.grace_replay_details(
                        session, decision, caller_device=replayer.label, caller_ip=ctx.client_ip
                    )
                    await self.events.stage(tx, "session.refresh_replayed_in_grace", ctx, session, details)
                case Rotate():
                    pass
                case _:
                    assert_never(decision)  # mypy: every decision is handled
            if not isinstance(decision, ReuseDetected):
                session = self.mint.touched(session, now, ctx.client_ip)
                if not await self.store.save_live_session(tx, session):
                    raise DomainError("session_expired")  # revoked while we rotated: roll back
                await self.store.touch_device(tx, session.user_id, session.device_fingerprint, now)
        if isinstance(decision, ReuseDetected):
            await self.revocation.announce([session.id])
            log.warning("refresh_token_reuse_detected", session_id=session.id, user_id=session.user_id)
            raise DomainError("session_expired")
        self.events.notify()
        assert issued is not None
        return self.mint.issued(session, signer, issued)

    async def forget_stale_successors(self) -> int:
        """Sealed successors past the grace can never be handed out again: drop them."""
        async with self.transactions.writing() as tx:
            return await self.store.forget_stale_successors(tx, self.clock.now() - self.grace)
