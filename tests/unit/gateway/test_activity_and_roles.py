"""The gateway's session-activity reporter (at most one report per session per minute, batched)
and its role cache (dropped by rbac change events, never re-filled by a load that raced one)."""

from __future__ import annotations

import asyncio

from deelrx.rbac.v1 import rbac_pb2
from gateway.activity import ActivityReporter
from gateway.roles import RoleCache
from tests.unit.gateway.test_jwks_cache import Ticks


async def test_each_session_is_reported_once_per_interval_in_batches() -> None:
    batches: list[list[str]] = []

    async def touch(ids: list[str]) -> None:
        batches.append(sorted(ids))

    ticks = Ticks()
    reporter = ActivityReporter(touch, report_every=60, monotonic=ticks)
    for _ in range(1000):
        reporter.seen("ses_a")
        reporter.seen("ses_b")
    await reporter.flush()
    await reporter.flush()  # nothing new
    assert batches == [["ses_a", "ses_b"]]
    reporter.seen("ses_a")
    await reporter.flush()
    assert len(batches) == 1  # inside the interval: not reported again
    ticks.value += 60
    reporter.seen("ses_a")
    await reporter.flush()
    assert batches[-1] == ["ses_a"]


async def test_a_failed_report_never_reaches_the_request() -> None:
    async def touch(ids: list[str]) -> None:
        raise ConnectionError("sessions down")

    reporter = ActivityReporter(touch)
    reporter.seen("ses_a")
    await reporter.flush()  # logged, not raised


class Rbac:
    def __init__(self) -> None:
        self.roles = {("usr_1", "tm_1"): "staff", ("usr_2", "tm_1"): "manager"}
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def load(self, user_id: str, team_id: str) -> str | None:
        self.calls += 1
        role = self.roles.get((user_id, team_id))
        if self.gate is not None:
            await self.gate.wait()
        return role


def _changed(team_id: str, user_id: str = "") -> bytes:
    return rbac_pb2.AuthorizationChanged(team_id=team_id, revision=2, user_id=user_id).SerializeToString()


async def test_roles_are_cached_until_rbac_says_they_changed() -> None:
    rbac = Rbac()
    cache = RoleCache(rbac.load)
    cache.feed_healthy = True
    for _ in range(100):
        assert await cache.role_of("usr_1", "tm_1") == "staff"
    assert rbac.calls == 1
    assert await cache.role_of("usr_9", "tm_1") is None  # not a member, cached too
    assert await cache.role_of("usr_9", "tm_1") is None and rbac.calls == 2
    rbac.roles[("usr_1", "tm_1")] = "manager"
    cache.on_message("rbac.changed.tm_1", _changed("tm_1", "usr_1"))
    assert await cache.role_of("usr_1", "tm_1") == "manager"
    # A team-wide change drops every member of that team, and only that team.
    await cache.role_of("usr_2", "tm_1")
    calls = rbac.calls
    cache.on_message("rbac.changed.tm_1", _changed("tm_1"))
    await cache.role_of("usr_2", "tm_1")
    assert rbac.calls == calls + 1
    cache.on_message("rbac.changed.tm_x", b"\xff garbage")  # ignored, no crash


async def test_a_load_racing_a_change_is_not_cached() -> None:
    rbac = Rbac()
    cache = RoleCache(rbac.load)
    cache.feed_healthy = True
    rbac.gate = asyncio.Event()
    pending = asyncio.create_task(cache.role_of("usr_1", "tm_1"))
    await asyncio.sleep(0)
    rbac.roles[("usr_1", "tm_1")] = "manager"
    cache.on_message("rbac.changed.tm_1", _changed("tm_1", "usr_1"))
    rbac.gate.set()
    assert await pending == "staff"  # answered with what it read...
    rbac.gate = None
    assert await cache.role_of("usr_1", "tm_1") == "manager"  # ...but not kept


async def test_without_the_feed_entries_live_only_briefly() -> None:
    rbac = Rbac()
    ticks = Ticks()
    cache = RoleCache(rbac.load, ttl_without_feed=5, monotonic=ticks)
    await cache.role_of("usr_1", "tm_1")
    ticks.value += 4.9
    await cache.role_of("usr_1", "tm_1")
    assert rbac.calls == 1
    ticks.value += 0.1
    await cache.role_of("usr_1", "tm_1")
    assert rbac.calls == 2


async def test_a_moved_change_revision_reloads_the_role_without_a_notice() -> None:
    rbac = Rbac()
    cache = RoleCache(rbac.load)
    cache.feed_healthy = True
    assert await cache.role_of("usr_1", "tm_1", ("", "")) == "staff"
    assert await cache.role_of("usr_1", "tm_1", ("", "")) == "staff" and rbac.calls == 1
    rbac.roles[("usr_1", "tm_1")] = "manager"  # changed through another gateway replica
    assert await cache.role_of("usr_1", "tm_1", ("", "t2")) == "manager"
    assert await cache.role_of("usr_1", "tm_1", ("", "t2")) == "manager" and rbac.calls == 2
