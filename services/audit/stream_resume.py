"""Resuming a live stream: what was stored after a position the client saw, oldest first.

A position is the (time, id) of a streamed item (the same opaque encoding as a cursor).
Events and alerts are merged by that order. An event whose own time is older than the
position but that was stored later (a producer's clock behind, a long NATS outage) is not
replayed; the client finds it with a query.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.db import reading
from services.audit.domain.alerts import AlertRecord, view_for_team
from services.audit.domain.events import EventRecord
from services.audit.domain.paging import Cursor
from services.audit.ports import AlertStore, EventStore

BATCH = 500
MAX_ALERTS = 1000


def position_of(item: EventRecord | AlertRecord) -> str:
    return Cursor(item.time, item.id).encode()


async def _events_after(
    sessionmaker: async_sessionmaker[AsyncSession], events: EventStore, team_id: str, after: Cursor
) -> AsyncIterator[EventRecord]:
    position: Cursor | None = after
    while True:
        async with reading(sessionmaker) as s:
            rows = await events.query_events(
                s, team_id=team_id, actor_user_id=None, after=position, limit=BATCH, newest_first=False
            )
        for r in rows:
            yield r.event
        if len(rows) < BATCH:
            return
        position = Cursor(rows[-1].event.time, rows[-1].event.id)


async def replay_after(
    sessionmaker: async_sessionmaker[AsyncSession],
    events: EventStore,
    alerts: AlertStore,
    team_id: str,
    members: Collection[str],
    after: Cursor,
) -> AsyncIterator[EventRecord | AlertRecord]:
    async with reading(sessionmaker) as s:
        stored = await alerts.query_alerts(
            s, team_id=team_id, member_user_ids=list(members), after=after, limit=MAX_ALERTS, newest_first=False
        )
    visible = [v for v in (view_for_team(a, team_id, members) for a in stored) if v is not None]

    def key(item: EventRecord | AlertRecord) -> tuple[datetime, str]:
        return (item.time, item.id)

    pending = list(visible)
    async for event in _events_after(sessionmaker, events, team_id, after):
        while pending and key(pending[0]) < key(event):
            yield pending.pop(0)
        yield event
    for alert in pending:
        yield alert
