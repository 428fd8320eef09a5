"""Change revisions against a real Redis: read in the rate limiter's one round trip together
with the revocation check, created by the read when missing, and moved by every write (or a
vanished key) to a value never seen before."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from gateway import change_revisions
from gateway.ratelimit import RateLimiter
from gateway.redis_breaker import RedisBreaker


@pytest.fixture
async def client(redis_url: str):
    c = aioredis.from_url(redis_url)
    yield c
    await c.aclose()


async def test_revisions_ride_in_the_rate_limit_round_trip(client: aioredis.Redis) -> None:
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    user, team = f"usr_{uuid.uuid4().hex}", f"tm_{uuid.uuid4().hex}"
    watch = change_revisions.keys_for(user, team)
    revoked_key = f"deelrx:revoked:ses_{uuid.uuid4().hex}"
    await limiter.hit("team-starter", "tm_warm", 100)  # loads the script into this Redis
    trips = limiter.redis_round_trips
    first = await limiter.hit("team-starter", team, 100, revoked_key, scope="team", watch=watch)
    assert first.allowed and first.revoked is False
    # Nothing written yet: the read created a stamp for each, and reads it again unchanged.
    assert first.watched is not None and all(first.watched) and first.watched[0] != first.watched[1]
    assert limiter.redis_round_trips == trips + 1
    again = await limiter.hit("team-starter", team, 100, scope="team", watch=watch)
    assert again.watched == first.watched

    breaker = RedisBreaker(client.ping)
    assert await change_revisions.bump(client, breaker, user, team)
    await client.set(revoked_key, "1")
    second = await limiter.hit("team-starter", team, 100, revoked_key, scope="team", watch=watch)
    assert limiter.redis_round_trips == trips + 3
    assert second.revoked is True
    assert second.watched is not None and all(second.watched) and second.watched[0] == second.watched[1]

    # A write by the user alone (no team in its path) moves only the user's revision.
    assert await change_revisions.bump(client, breaker, user, None)
    third = await limiter.hit("team-starter", team, 100, scope="team", watch=watch)
    assert third.watched is not None and third.revoked is None
    assert third.watched[0] not in ("", second.watched[0]) and third.watched[1] == second.watched[1]
    assert 0 < await client.ttl(change_revisions.user_key(user)) <= change_revisions.REVISION_TTL_SECONDS

    # A stamp that vanishes (flush, eviction, expiry) comes back as a new one, never as "unset".
    await client.delete(*watch)
    fourth = await limiter.hit("team-starter", team, 100, scope="team", watch=watch)
    assert fourth.watched is not None and all(fourth.watched)
    assert fourth.watched[0] != third.watched[0] and fourth.watched[1] != third.watched[1]
    assert 0 < await client.ttl(change_revisions.team_key(team)) <= change_revisions.REVISION_TTL_SECONDS


async def test_without_watched_keys_nothing_more_is_asked(client: aioredis.Redis) -> None:
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    decision = await limiter.hit("user-starter", f"usr_{uuid.uuid4().hex}", 100, scope="user")
    assert decision.watched is None and decision.revoked is None
