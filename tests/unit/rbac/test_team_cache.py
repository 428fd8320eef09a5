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


async def test_snapshots_never_expire_on_a_timer() -> None:
    db = Database()
    cache = TeamCache(db.load)
    await cache.get("tm_1")
    for _ in range(100):
        await cache.get("tm_1")
    assert db.loads == 1


async def test_a_change_event_reloads_in_the_background() -> None:
    db = Database()
    cache = TeamCache(db.load)
    await cache.get("tm_1")
    db.revision = 2
    cache.changed("tm_1", 2)
    await cache.settled()
    assert db.loads == 2
    assert cache.peek("tm_1") is not None and cache.peek("tm_1").revision == 2
    assert (await cache.get("tm_1")).revision == 2
    assert db.loads == 2  # the Check after the event found it in memory


async def test_own_write_is_loaded_in_the_write_path() -> None:
    db = Database()
    cache = TeamCache(db.load)
    await cache.get("tm_1")
    db.revision = 2
    await cache.refresh("tm_1", 2)
    loads = db.loads
    assert (await cache.get("tm_1")).revision == 2
    assert db.loads == loads


async def test_resync_reloads_only_teams_behind_the_stored_revision() -> None:
    db = Database()
    cache = TeamCache(db.load)
    await cache.preload(["tm_1", "tm_2"])
    assert db.loads == 2
    db.revision = 3
    assert cache.resync({"tm_1": 1, "tm_2": 3, "tm_3": 7}) == 1
    await cache.settled()
    assert db.loads == 3
    assert cache.peek("tm_1").revision == 1 and cache.peek("tm_2").revision == 3
    assert cache.peek("tm_3") is None  # not loaded yet; its first use will load revision >= 7
