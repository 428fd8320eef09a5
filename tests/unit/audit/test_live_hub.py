"""The live feed never blocks the consumers: a slow subscriber is dropped, others go on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.audit.domain.events import EventRecord
from services.audit.live_hub import LiveHub, SubscriberDropped


def ev(i: int, team: str = "tm_1") -> EventRecord:
    return EventRecord(id=f"evt_{i}", time=datetime(2026, 1, 1, tzinfo=UTC), type="member.joined", team_id=team)


async def test_slow_subscriber_is_dropped_and_others_keep_receiving() -> None:
    hub = LiveHub(queue_size=3)
    stop = asyncio.Event()
    slow = hub.subscribe(lambda item: item)
    team_only = hub.subscribe(lambda item: item if isinstance(item, EventRecord) and item.team_id == "tm_2" else None)
    for i in range(5):
        hub.publish(ev(i))
    hub.publish(ev(9, team="tm_2"))
    assert slow.dropped and hub.subscriber_count == 1

    with pytest.raises(SubscriberDropped):
        async for _ in hub.items(slow, stop):
            pass

    got = []
    async for item in hub.items(team_only, stop):
        got.append(item.id)
        stop.set()
    assert got == ["evt_9"]
    assert hub.subscriber_count == 0
