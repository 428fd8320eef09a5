"""In-process fan-out of newly stored events and alerts to StreamEvents subscribers.

Each subscriber has a bounded queue and a filter; publishing never waits. A subscriber whose
queue is full is dropped (its stream ends with `unavailable`, the client reconnects and
catches up with QueryEvents), so one slow reader cannot hold back the consumers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from services.audit.domain.alerts import AlertRecord
from services.audit.domain.events import EventRecord

log = structlog.get_logger(__name__)

LiveItem = EventRecord | AlertRecord
Filter = Callable[[LiveItem], LiveItem | None]

QUEUE_SIZE = 1000


class SubscriberDropped(Exception):
    pass


@dataclass(eq=False)
class Subscriber:
    accept: Filter
    queue: asyncio.Queue[LiveItem | None]
    dropped: bool = False


class LiveHub:
    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, accept: Filter) -> Subscriber:
        sub = Subscriber(accept, asyncio.Queue(maxsize=self._queue_size))
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(self, item: LiveItem) -> None:
        for sub in list(self._subscribers):
            view = sub.accept(item)
            if view is None:
                continue
            try:
                sub.queue.put_nowait(view)
            except asyncio.QueueFull:
                log.warning("live_subscriber_dropped", queue_size=self._queue_size)
                sub.dropped = True
                self._subscribers.discard(sub)
                # Make room for the wake-up marker; the stream ends on it.
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait(None)

    async def items(self, sub: Subscriber, stop: asyncio.Event) -> AsyncIterator[LiveItem]:
        """Yield the subscriber's items until `stop`; raise SubscriberDropped when dropped."""
        stopping = asyncio.ensure_future(stop.wait())
        getting: asyncio.Future[LiveItem | None] | None = None
        try:
            while True:
                getting = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if getting not in done:
                    return
                item = getting.result()
                if item is None:
                    raise SubscriberDropped
                yield item
        finally:
            stopping.cancel()
            if getting is not None and not getting.done():
                getting.cancel()
            self.unsubscribe(sub)
