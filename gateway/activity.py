"""Session activity for `last_seen_at`: each gateway reports a session at most once a minute,
in batches, off the request path (the sessions service also writes at most once a minute per
session, so several gateways cannot multiply the writes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from deelrx_kit.periodic import run_every

log = structlog.get_logger("deelrx.gateway.activity")

REPORT_EVERY_SECONDS = 60.0
FLUSH_EVERY_SECONDS = 5.0
MAX_TRACKED = 100_000


class ActivityReporter:
    def __init__(
        self,
        touch: Callable[[list[str]], Awaitable[None]],
        *,
        report_every: float = REPORT_EVERY_SECONDS,
        flush_every: float = FLUSH_EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._touch = touch
        self._report_every = report_every
        self._flush_every = flush_every
        self._reported: dict[str, float] = {}  # session id -> monotonic time last queued
        self._pending: set[str] = set()

    def seen(self, session_id: str) -> None:
        """A request of this session was served (no I/O)."""
        now = self._monotonic()
        last = self._reported.get(session_id)
        if last is not None and now - last < self._report_every:
            return
        if len(self._reported) >= MAX_TRACKED:
            cutoff = now - self._report_every
            self._reported = {sid: t for sid, t in self._reported.items() if t > cutoff}
        self._reported[session_id] = now
        self._pending.add(session_id)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = list(self._pending), set()
        try:
            await self._touch(batch)
        except Exception as exc:  # noqa: BLE001 - last_seen_at is informative; never fail requests
            log.warning("activity_report_failed", error=str(exc), sessions=len(batch))

    async def run(self, stop: asyncio.Event) -> None:
        await run_every(self._flush_every, self.flush, stop, name="activity_flush", wait_first=True)
        await self.flush()  # what was seen since the last round, before the process ends
