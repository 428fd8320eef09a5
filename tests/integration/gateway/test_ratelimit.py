"""The sliding-window limiter against a real Redis."""

import uuid

import redis.asyncio as aioredis

from gateway.ratelimit import RateLimiter


async def test_limit_refuses_the_request_past_the_quota(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    decisions = [await limiter.hit("team-starter", "tm_a", 5) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[-1]
    assert 1 <= refused.retry_after <= 120
    assert refused.headers()["RateLimit-Policy"] == '"team-starter";q=5;w=60'
    assert refused.headers()["RateLimit"].startswith('"team-starter";r=0;t=')
    await client.aclose()


async def test_subjects_are_limited_separately(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    for _ in range(3):
        await limiter.hit("p", "a", 3)
    assert not (await limiter.hit("p", "a", 3)).allowed
    assert (await limiter.hit("p", "b", 3)).allowed
    await client.aclose()


async def test_concurrent_hits_never_exceed_the_limit(redis_url: str) -> None:
    import asyncio

    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    results = await asyncio.gather(*(limiter.hit("p", "x", 20) for _ in range(50)))
    assert sum(d.allowed for d in results) == 20
    await client.aclose()


async def test_revoked_session_is_reported_in_the_same_round_trip(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    sid_key = f"deelrx:revoked:ses_{uuid.uuid4().hex}"
    assert not (await limiter.hit("p", "u", 10, sid_key)).revoked
    await client.set(sid_key, 1, ex=60)
    assert (await limiter.hit("p", "u", 10, sid_key)).revoked
    await client.aclose()


async def test_unreachable_redis_does_not_fail_the_request() -> None:
    from deploy.local.infra import free_port

    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    assert await RateLimiter(client).hit("p", "u", 10) is None
    await client.aclose()
