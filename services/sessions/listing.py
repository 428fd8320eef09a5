"""Listing: one session (whatever its state), a user's live sessions with their devices, and
the activity reports that keep `last_seen_at` current."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from deelrx_kit.clock import Clock
from deelrx_kit.errors import not_found, validation_error
from services.sessions.domain.records import SessionRecord
from services.sessions.issuing import MAX_ID
from services.sessions.ports import SessionReads, SessionStore, Transactions

# `last_seen_at` is written at most this often per session.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
TOUCH_BATCH_MAX = 1000


class Listing:
    def __init__(self, *, transactions: Transactions, store: SessionStore, reads: SessionReads, clock: Clock) -> None:
        self.transactions = transactions
        self.store = store
        self.reads = reads
        self.clock = clock

    async def get(self, session_id: str) -> SessionRecord:
        """A session whatever its state: revoked is flagged, expiry is visible in its times and
        left to the caller (the gateway answers session_expired, an admin view shows history)."""
        if not session_id:
            raise not_found("Session not found")
        session = await self.reads.session(session_id)
        if session is None:
            raise not_found("Session not found")
        return session

    async def list_sessions(self, user_id: str, team_id: str) -> list[SessionRecord]:
        if not user_id:
            raise validation_error("/user_id", "a user id is required")
        async with self.transactions.reading() as tx:
            return await self.store.list_live_sessions(tx, user_id, team_id, self.clock.now())

    async def touch(self, session_ids: Sequence[str]) -> int:
        """Record activity: `last_seen_at` moves only when it is at least a minute old, so it
        is written at most once a minute per session, however many gateways report it."""
        ids = [sid for sid in dict.fromkeys(session_ids) if sid and len(sid) <= MAX_ID][:TOUCH_BATCH_MAX]
        if not ids:
            return 0
        now = self.clock.now()
        async with self.transactions.writing() as tx:
            return await self.store.touch_sessions(tx, ids, now, now - LAST_SEEN_RESOLUTION)
