"""In-memory team authorization snapshots for the hot path (Check, BatchCheck, LookupResources).

A snapshot is dropped when this process commits a change, when another replica announces one
on `rbac.changed.<team_id>`, or when a caller asks for a revision newer than the snapshot.
Snapshots older than `max_age_seconds` are reloaded too, which bounds staleness if a NATS
message is lost (e.g. during a disconnection).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.rbac.domain.team import TeamAuthorization

Loader = Callable[[str], Awaitable[TeamAuthorization]]


@dataclass
class _Entry:
    snapshot: TeamAuthorization
    loaded_at: float


class TeamCache:
    def __init__(self, load: Loader, *, max_age_seconds: float = 10.0, max_teams: int = 10_000) -> None:
        self._load = load
        self.max_age_seconds = max_age_seconds
        self._max_teams = max_teams
        self._entries: dict[str, _Entry] = {}
        # Newest revision this process has heard of per team (own commits and NATS).
        self._heard: dict[str, int] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self.loads = 0

    def _usable(self, team_id: str, entry: _Entry | None, min_revision: int) -> bool:
        if entry is None:
            return False
        wanted = max(min_revision, self._heard.get(team_id, 0))
        return entry.snapshot.revision >= wanted and time.monotonic() - entry.loaded_at < self.max_age_seconds

    async def get(self, team_id: str, min_revision: int = 0) -> TeamAuthorization:
        entry = self._entries.get(team_id)
        if self._usable(team_id, entry, min_revision):
            assert entry is not None
            return entry.snapshot
        # One load per team at a time; waiters reuse its result when it is new enough.
        lock = self._loading.setdefault(team_id, asyncio.Lock())
        async with lock:
            entry = self._entries.get(team_id)
            if self._usable(team_id, entry, min_revision):
                assert entry is not None
                return entry.snapshot
            snapshot = await self._load(team_id)
            self.loads += 1
            self._store(snapshot)
            return snapshot

    def _store(self, snapshot: TeamAuthorization) -> None:
        # A change announced while we were loading may be missing from what we read.
        if snapshot.revision < self._heard.get(snapshot.team_id, 0):
            return
        self._entries.pop(snapshot.team_id, None)
        self._entries[snapshot.team_id] = _Entry(snapshot, time.monotonic())
        while len(self._entries) > self._max_teams:
            oldest = next(iter(self._entries))
            del self._entries[oldest]
            self._loading.pop(oldest, None)

    def changed(self, team_id: str, revision: int) -> None:
        """The team reached `revision` (committed here or announced by another replica)."""
        if revision > self._heard.get(team_id, 0):
            self._heard[team_id] = revision
        entry = self._entries.get(team_id)
        if entry is not None and entry.snapshot.revision < revision:
            del self._entries[team_id]

    def clear(self) -> None:
        self._entries.clear()
