"""What the sessions service forgets, and when (batched, one replica at a time:
`deelrx_kit.purge`).

- refresh tokens: a day after their session ended (expired, idle or revoked);
- session rows: a week after they ended (listings show live sessions only; the audit trail
  keeps the history). Tokens go first, so none outlives its session row.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.purge import PurgeRule, purge_loop
from services.sessions.adapters.sql import refresh_tokens, sessions_table

ENDED_TOKEN_RETENTION = timedelta(days=1)
ENDED_SESSION_RETENTION = timedelta(days=7)
PURGE_INTERVAL_SECONDS = 300.0
LOCK_NAME = "deelrx-sessions-purge"


def ended_before(cutoff: datetime) -> ColumnElement[bool]:
    s = sessions_table.c
    return or_(s.expires_at <= cutoff, s.idle_expires_at <= cutoff, s.revoked_at <= cutoff)


def _tokens_expired(now: datetime) -> ColumnElement[bool]:
    families = select(sessions_table.c.family_id).where(ended_before(now - ENDED_TOKEN_RETENTION))
    return refresh_tokens.c.family_id.in_(families)


RULES = (
    PurgeRule("refresh_tokens", refresh_tokens, _tokens_expired),
    PurgeRule("sessions", sessions_table, lambda now: ended_before(now - ENDED_SESSION_RETENTION)),
)


async def run_purges(db: async_sessionmaker[AsyncSession], clock: Clock, stop: asyncio.Event) -> None:
    await purge_loop(db, RULES, clock, stop, lock_name=LOCK_NAME, every_seconds=PURGE_INTERVAL_SECONDS)
