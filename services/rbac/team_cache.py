"""Every team's authorization state in memory, for the hot path (Check, BatchCheck, LookupResources).

Kept current by events, never by a timer:
- loaded at start (`preload`), and on first use for a team not loaded yet;
- after this process commits a change, the team is reloaded in the write path (`refresh`), so
  the next Check finds it in memory;
- a change announced by another replica on `rbac.changed.<team_id>` marks the snapshot stale
  and reloads it in the background; a Check arriving before that reload waits for it (it never
  answers from a snapshot older than a revision this process has heard of);
- after a NATS (re)connection, when messages may have been missed, `resync` compares every
  team's stored revision (one query) with the snapshots and reloads the stale ones;
- a caller that has seen revision N (`min_revision`) never gets an answer from an older one.
In steady state a Check reads only memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

import structlog

from services.rbac.domain.team import TeamAuthorization

log = structlog.get_logger(__name__)

Loader = Callable[[str], Awaitable[TeamAuthorization]]


class TeamCache:
    def __init__(self, load: Loader, *, max_teams: int = 100_000) -> None:
        self._load = load
        self._max_teams = max_teams
        self._entries: dict[str, TeamAuthorization] = {}
        # Newest revision this process has heard of per team (own commits and NATS).
        self._heard: dict[str, int] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.loads = 0

    def _usable(self, team_id: str, snapshot: TeamAuthorization | None, min_revision: int) -> bool:
        if snapshot is None:
            return False
        return snapshot.revision >= max(min_revision, self._heard.get(team_id, 0))

    def peek(self, team_id: str) -> TeamAuthorization | None:
        return self._entries.get(team_id)

    async def get(self, team_id: str, min_revision: int = 0) -> TeamAuthorization:
        snapshot = self._entries.get(team_id)
        if self._usable(team_id, snapshot, min_revision):
            assert snapshot is not None
            return snapshot
        # One load per team at a time; waiters reuse its result when it is new enough.
        lock = self._loading.setdefault(team_id, asyncio.Lock())
        async with lock:
            snapshot = self._entries.get(team_id)
            if self._usable(team_id, snapshot, min_revision):
                assert snapshot is not None
                return snapshot
            snapshot = await self._load(team_id)
            self.loads += 1
            self._store(snapshot)
            return snapshot

    def _store(self, snapshot: TeamAuthorization) -> None:
        # A change announced while we were loading may be missing from what we read: keep
        # it out of memory so the next caller loads again.
        if snapshot.revision < self._heard.get(snapshot.team_id, 0):
            return
        self._entries.pop(snapshot.team_id, None)
        self._entries[snapshot.team_id] = snapshot
        while len(self._entries) > self._max_teams:
            oldest = next(iter(self._entries))
            del self._entries[oldest]
            self._loading.pop(oldest, None)

    def changed(self, team_id: str, revision: int) -> None:
        """The team reached `revision` (committed here or announced by another replica)."""
        if revision > self._heard.get(team_id, 0):
            self._heard[team_id] = revision
        snapshot = self._entries.get(team_id)
        if snapshot is not None and snapshot.revision < revision:
            del self._entries[team_id]
            self._reload_soon(team_id, revision)

    async def refresh(self, team_id: str, revision: int) -> None:
        """After this process committed `revision`: load it now, in the write path."""
        self.changed(team_id, revision)
        await self.get(team_id, revision)

    def _reload_soon(self, team_id: str, revision: int) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._reload(team_id, revision))
        except RuntimeError:
            return  # no loop (a synchronous caller): the next get() loads it
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload(self, team_id: str, revision: int) -> None:
        try:
            await self.get(team_id, revision)
        except Exception as exc:  # noqa: BLE001 - the next Check loads it (or fails) itself
            log.warning("rbac_reload_failed", team_id=team_id, error=str(exc))

    def resync(self, revisions: Mapping[str, int]) -> int:
        """Stored revisions of every team (after a reconnect): drop and reload what is behind."""
        stale = 0
        for team_id, revision in revisions.items():
            snapshot = self._entries.get(team_id)
            if snapshot is not None and snapshot.revision < revision:
                stale += 1
            self.changed(team_id, revision)
        return stale

    async def preload(self, team_ids: Iterable[str]) -> int:
        loaded = 0
        for team_id in team_ids:
            if loaded >= self._max_teams:
                break
            await self.get(team_id)
            loaded += 1
        return loaded

    async def settled(self) -> None:
        """Wait for background reloads (tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def clear(self) -> None:
        self._entries.clear()
