"""/v1/auth/me's cache: served from memory while the change revisions match, loaded again when
they move, when a notice arrives, when the token is newer than the entry; bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deelrx_kit.errors import DomainError
from gateway.profile_cache import Caller, Loaders, Lru, Membership, ProfileCache


class Source:
    """What the services would answer, and how often they were asked."""

    def __init__(self) -> None:
        self.users = {"usr_a": "Ada", "usr_b": "Bob"}
        self.plan = "starter"
        self.role = "staff"
        self.idle = "2026-01-01T00:05:00Z"
        self.member = True
        self.revoked = False
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def user(self, user_id: str) -> dict[str, Any]:
        self.calls.append("user")
        name = self.users[user_id]  # read before the wait: what a slow service would answer
        if self.gate is not None:
            self.entered.set()
            await self.gate.wait()
        return {"id": user_id, "name": name}

    async def session(self, session_id: str) -> dict[str, Any]:
        self.calls.append("session")
        if self.revoked:
            raise DomainError("session_expired")
        return {"id": session_id, "idle_expires_at": self.idle}

    async def team(self, team_id: str) -> dict[str, str]:
        self.calls.append("team")
        return {"id": team_id, "name": "Acme", "plan": self.plan}

    async def membership(self, user_id: str, team_id: str) -> Membership:
        self.calls.append("membership")
        return (self.role, ("customers.read",)) if self.member else None

    def loaders(self) -> Loaders:
        return Loaders(self.user, self.session, self.team, self.membership)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def caller(
    user: str = "usr_a", team: str | None = "tm_1", revs: tuple[str, ...] | None = ("u1", "t1"), iat: int = 10
) -> Caller:
    return Caller(user, f"ses_{user}", team, iat, revs)


def cache_for(source: Source, entries: int = 100) -> tuple[ProfileCache, Clock]:
    clock = Clock()
    wall = Clock()
    wall.now = 100.0  # tokens in these tests were issued at 10
    cache = ProfileCache(source.loaders(), entries, monotonic=clock, wall=wall)
    cache.feed_healthy = True  # the NATS feed connected (its outages: test_me_cache_freshness.py)
    return cache, clock


async def test_a_warm_cache_answers_without_any_load() -> None:
    source = Source()
    cache, _ = cache_for(source)
    first = await cache.me(caller())
    assert sorted(source.calls) == ["membership", "session", "team", "user"]
    source.calls.clear()
    assert await cache.me(caller()) == first
    assert source.calls == []
    assert first["team"] == {"id": "tm_1", "name": "Acme", "plan": "starter", "role": "staff"}
    assert first["permissions"] == ["customers.read"]


async def test_a_moved_user_revision_reloads_the_users_parts_only() -> None:
    source = Source()
    cache, _ = cache_for(source)
    await cache.me(caller())
    source.calls.clear()
    source.users["usr_a"] = "Ada L."
    answer = await cache.me(caller(revs=("u2", "t1")))
    assert answer["user"]["name"] == "Ada L."
    assert sorted(source.calls) == ["membership", "session", "user"]


async def test_a_moved_team_revision_reloads_team_and_membership() -> None:
    source = Source()
    cache, _ = cache_for(source)
    await cache.me(caller())
    source.calls.clear()
    source.plan, source.role = "enterprise", "manager"
    answer = await cache.me(caller(revs=("u1", "t2")))
    assert answer["team"]["plan"] == "enterprise" and answer["team"]["role"] == "manager"
    assert sorted(source.calls) == ["membership", "team"]


async def test_unknown_revisions_bypass_the_cache() -> None:
    source = Source()
    cache, _ = cache_for(source)
    await cache.me(caller())
    source.calls.clear()
    source.users["usr_a"] = "Changed"
    assert (await cache.me(caller(revs=None)))["user"]["name"] == "Changed"
    assert len(source.calls) == 4


async def test_notices_drop_what_they_name() -> None:
    source = Source()
    cache, _ = cache_for(source)
    await cache.me(caller())
    source.calls.clear()
    source.role = "manager"
    cache.membership_changed("tm_1", "usr_a")
    assert (await cache.me(caller()))["team"]["role"] == "manager"
    assert source.calls == ["membership"]
    source.calls.clear()
    source.member = False
    cache.membership_changed("tm_1")
    answer = await cache.me(caller())
    assert answer["team"] is None and answer["permissions"] == []
    source.calls.clear()
    source.plan = "professional"
    cache.team_changed("tm_1")
    source.member = True
    cache.membership_changed("tm_1")
    assert (await cache.me(caller()))["team"]["plan"] == "professional"
    source.calls.clear()
    cache.user_changed("usr_a")
    await cache.me(caller())
    assert sorted(source.calls) == ["membership", "user"]
    source.calls.clear()
    source.revoked = True
    cache.sessions_ended(["ses_usr_a"])
    with pytest.raises(DomainError):
        await cache.me(caller())


async def test_a_token_issued_after_the_load_reads_the_session_again() -> None:
    source = Source()
    cache, _ = cache_for(source)
    await cache.me(caller(iat=10))
    source.calls.clear()
    source.idle = "2026-01-01T00:10:00Z"  # a refresh moved it, and minted a new token
    answer = await cache.me(caller(iat=100))
    assert answer["session"]["idle_expires_at"] == "2026-01-01T00:10:00Z"
    assert source.calls == ["session"]


async def test_entries_expire_after_the_ttl() -> None:
    source = Source()
    cache, clock = cache_for(source)
    await cache.me(caller())
    clock.now += 301
    source.calls.clear()
    await cache.me(caller())
    assert len(source.calls) == 4


async def test_a_load_that_straddles_a_notice_is_not_kept() -> None:
    source = Source()
    cache, _ = cache_for(source)
    source.gate = asyncio.Event()
    pending = asyncio.create_task(cache.me(caller(team=None)))
    await source.entered.wait()
    source.users["usr_a"] = "Renamed"
    cache.user_changed("usr_a")  # arrives while the old value is on its way
    source.gate.set()
    assert (await pending)["user"]["name"] == "Ada"  # this request read before the change
    source.gate = None
    source.calls.clear()
    assert (await cache.me(caller(team=None)))["user"]["name"] == "Renamed"
    assert "user" in source.calls


async def test_each_part_is_bounded_and_forgets_the_least_recently_used() -> None:
    source = Source()
    source.users.update({f"usr_{i}": str(i) for i in range(10)})
    cache, _ = cache_for(source, entries=3)
    for i in range(10):
        await cache.me(caller(user=f"usr_{i}", team=None))
    assert len(cache.users) == 3 and len(cache.sessions) == 3
    source.calls.clear()
    await cache.me(caller(user="usr_9", team=None))
    assert source.calls == []
    await cache.me(caller(user="usr_0", team=None))
    assert sorted(source.calls) == ["session", "user"]


def test_lru_keeps_recently_read_entries() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and len(lru) == 2
