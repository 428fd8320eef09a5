"""The team snapshot cache: when it reloads and when it refuses to keep a snapshot."""

from __future__ import annotations

import asyncio

from services.rbac.domain.team import TeamAuthorization
from services.rbac.team_cache import TeamCache


class Database:
    """Stands in for the store: a revision per team that tests move."""

    def __init__(self) -> None:
        self.revision = 1
        self.loads = 0
        self.pause: asyncio.Event | None = None

    async def load(self, team_id: str) -> TeamAuthorization:
        self.loads += 1
        revision = self.revision
        if self.pause is not None:
            await self.pause.wait()
        return TeamAuthorization(team_id, revision)


async def test_serves_from_memory_until_told_of_a_change() -> None:
    db = Database()
    cache = TeamCache(db.load)
    assert (await cache.get("tm_1")).revision == 1
    assert (await cache.get("tm_1")).revision == 1
    assert db.loads == 1
    db.revision = 2
    cache.changed("tm_1", 2)
    assert (await cache.get("tm_1")).revision == 2
    cache.changed("tm_1", 1)  # an old notice changes nothing
    await cache.get("tm_1")
    assert db.loads == 2


async def test_min_revision_forces_a_reload() -> None:
    db = Database()
    cache = TeamCache(db.load)
    await cache.get("tm_1")
    db.revision = 5
    assert (await cache.get("tm_1", min_revision=5)).revision == 5
    assert db.loads == 2


async def test_concurrent_misses_load_once() -> None:
    db = Database()
    cache = TeamCache(db.load)
    results = await asyncio.gather(*(cache.get("tm_1") for _ in range(10)))
    assert {r.revision for r in results} == {1}
    assert db.loads == 1


async def test_snapshot_older_than_a_heard_change_is_not_kept() -> None:
    db = Database()
    cache = TeamCache(db.load)
    db.pause = asyncio.Event()
    loading = asyncio.create_task(cache.get("tm_1"))
    await asyncio.sleep(0)
    cache.changed("tm_1", 2)  # announced while the load was reading revision 1
    db.pause.set()
    assert (await loading).revision == 1
    db.pause, db.revision = None, 2
    assert (await cache.get("tm_1")).revision == 2
    assert db.loads == 2


async def test_snapshots_expire() -> None:
    db = Database()
    cache = TeamCache(db.load, max_age_seconds=0)
    await cache.get("tm_1")
    await cache.get("tm_1")
    assert db.loads == 2
