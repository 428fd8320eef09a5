"""/v1/auth/me's cache in the real app over real Redis: a change stamp that vanishes is not taken
for an unchanged one, the NATS feed's state bounds how long an entry is trusted, and routes that
cache nothing from the stamps do not read them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.change_feed import ChangeFeed
from gateway.change_revisions import team_key, user_key
from gateway.profile_cache import ProfileCache, grpc_loaders
from tests.unit.gateway.asgi_harness import Harness, harness, new_session_id

TEAM = "tm_acme"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def own_db(redis_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The harness on a Redis database of its own, which these tests may flush."""
    async for built in harness(redis_url.rsplit("/", 1)[0] + "/9", tmp_path):
        yield built


@pytest.fixture
def user() -> str:
    """A user of this test alone: its stamps exist only once this test's requests made them."""
    return f"usr_{secrets.token_hex(6)}"


def bearer(h: Harness, user: str, team_id: str | None = None) -> dict[str, str]:
    # Issued a while ago: session summaries are cached too (docs/architecture.md).
    token = h.verifier.mint(new_session_id(), user, age=5, team_id=team_id)
    return {"Authorization": f"Bearer {token}"}


async def me(h: Harness, headers: dict[str, str]) -> dict[str, Any]:
    async with h.client() as client:
        r = await client.get("/v1/auth/me", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def name_seen(h: Harness, headers: dict[str, str]) -> str:
    return str((await me(h, headers))["user"]["name"])


async def no_resync() -> None:
    return None


@pytest.mark.parametrize("vanish", ["flushdb", "del"])
async def test_after_the_stamps_vanish_the_next_me_reads_fresh_data(own_db: Harness, user: str, vanish: str) -> None:
    h = own_db
    h.gw.profiles.feed_healthy = True  # as with a connected feed: entries live their full TTL
    headers = bearer(h, user, TEAM)
    h.identity.names[user] = "Ada"
    assert await name_seen(h, headers) == "Ada"
    h.identity.names[user] = "Ada L."  # changed behind the gateway, and its notice was lost
    assert await name_seen(h, headers) == "Ada"  # served from memory: nothing said it changed
    assert h.identity.user_reads == [user]
    if vanish == "flushdb":
        await h.gw.redis.flushdb()
    else:
        await h.gw.redis.delete(user_key(user), team_key(TEAM))
    assert await name_seen(h, headers) == "Ada L."
    assert await name_seen(h, headers) == "Ada L."  # and cached again under the new stamp
    assert h.identity.user_reads == [user, user]


async def test_while_the_feed_is_down_entries_are_trusted_for_seconds_only(gateway_app: Harness, user: str) -> None:
    h, clock = gateway_app, Clock()
    h.gw.profiles = ProfileCache(grpc_loaders(h.gw.clients), 100, monotonic=clock)
    feed = ChangeFeed(h.gw, no_resync)
    await feed.reconnected()
    headers = bearer(h, user)
    h.identity.names[user] = "Ada"
    assert await name_seen(h, headers) == "Ada"
    h.identity.names[user] = "Ada L."  # behind the gateway: only a notice would tell
    clock.now += 60
    assert await name_seen(h, headers) == "Ada"  # the feed is up: no notice, no change

    await feed.disconnected()
    assert await name_seen(h, headers) == "Ada L."  # a minute old: notices may be lost now
    h.identity.names[user] = "Ada M."
    assert await name_seen(h, headers) == "Ada L."  # seconds old: still served
    clock.now += 6
    assert await name_seen(h, headers) == "Ada M."


async def test_when_the_feed_reconnects_every_entry_is_dropped(gateway_app: Harness, user: str) -> None:
    h, clock = gateway_app, Clock()
    h.gw.profiles = ProfileCache(grpc_loaders(h.gw.clients), 100, monotonic=clock)
    feed = ChangeFeed(h.gw, no_resync)
    await feed.reconnected()
    headers = bearer(h, user)
    h.identity.names[user] = "Ada"
    assert await name_seen(h, headers) == "Ada"
    await feed.disconnected()
    h.identity.names[user] = "Ada L."  # its notice is sent while the gateway cannot hear it
    assert await name_seen(h, headers) == "Ada"  # seconds old: still served
    await feed.reconnected()
    assert await name_seen(h, headers) == "Ada L."
    h.identity.names[user] = "Ada M."
    clock.now += 60
    assert await name_seen(h, headers) == "Ada L."  # connected again: the full TTL applies


async def get_calls(h: Harness) -> int:
    stats = await h.gw.redis.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def test_verify_without_a_team_reads_no_change_stamp(gateway_app: Harness, user: str) -> None:
    h = gateway_app
    headers = bearer(h, user)
    gets = await get_calls(h)
    async with h.client() as client:
        for _ in range(5):
            assert (await client.get("/v1/auth/verify", headers=headers)).status_code == 200
        assert (await client.get("/v1/sessions", headers=headers)).status_code == 200
    # Forward auth without a team caches nothing the stamps guard: no GET, no stamp created.
    assert await get_calls(h) == gets
    assert await h.gw.redis.exists(user_key(user)) == 0
    await me(h, headers)
    assert await h.gw.redis.exists(user_key(user)) == 1
    assert await get_calls(h) == gets + 1


async def test_verify_with_a_team_reads_the_role_caches_stamps(gateway_app: Harness, user: str) -> None:
    h, team = gateway_app, f"tm_{secrets.token_hex(6)}"
    headers = bearer(h, user, team)
    gets = await get_calls(h)
    async with h.client() as client:
        r = await client.get("/v1/auth/verify", headers=headers)
    assert r.status_code == 200 and r.headers["x-role"] == "staff"
    assert await h.gw.redis.exists(user_key(user), team_key(team)) == 2
    assert await get_calls(h) == gets + 2
