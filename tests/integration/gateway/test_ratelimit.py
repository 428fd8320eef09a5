"""The rolling-minute limiter against a real Redis: exactness at the window's edges, under
concurrency from several replicas, pacing, plan changes, memory, and one round trip."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
import redis.asyncio as aioredis

from deelrx_kit.redis_url import connect_redis
from gateway.ratelimit import BUCKET_MS, WINDOW_MS, Decision, RateLimiter
from gateway.redis_breaker import RedisBreaker


class Clock:
    """Test-controlled time in ms, given to the script instead of Redis TIME."""

    def __init__(self, start: int = 1_800_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


def _limiter(client: aioredis.Redis, clock: Clock | None = None, **kwargs) -> RateLimiter:
    return RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}", clock_ms=clock, **kwargs)


def _patient(client: aioredis.Redis, prefix: str) -> RateLimiter:
    """A limiter whose Redis deadline a starved test host cannot reach (exactness tests)."""
    return RateLimiter(client, prefix=prefix, breaker=RedisBreaker(client.ping, timeout=3.0))


def _max_in_any_window(times: list[int], window_ms: int = WINDOW_MS) -> int:
    """The most served requests inside any half-open interval [t, t + 60 s)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_ms:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.fixture
async def client(redis_url: str):
    c = aioredis.from_url(redis_url)
    yield c
    await c.aclose()


async def test_refuses_past_the_quota_and_counts_down(client: aioredis.Redis) -> None:
    limiter = _limiter(client)
    decisions = [await limiter.hit("team-starter", "tm_a", 5) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    refused = decisions[-1]
    assert 59 <= refused.retry_after <= 61
    assert refused.headers()["RateLimit-Policy"] == '"team-starter";q=5;w=60'
    assert refused.headers()["RateLimit"].startswith('"team-starter";r=0;t=')


async def test_subjects_are_limited_separately(client: aioredis.Redis) -> None:
    limiter = _limiter(client)
    for _ in range(3):
        await limiter.hit("p", "a", 3)
    assert not (await limiter.hit("p", "a", 3)).allowed
    assert (await limiter.hit("p", "b", 3)).allowed


async def test_three_replicas_serve_at_most_the_limit_under_concurrency(redis_url: str) -> None:
    prefix = f"t:{uuid.uuid4().hex}"
    replicas = [_patient(connect_redis(redis_url), prefix) for _ in range(3)]
    calls = [replicas[i % 3].hit("team-starter", "tm_c", 100, scope="team") for i in range(300)]
    results = await asyncio.gather(*calls)
    assert sum(d.allowed for d in results) == 100
    assert {d.mode for d in results} <= {"shared", "cached"}
    for r in replicas:
        await r._redis.aclose()


async def test_edge_of_minute_bursts_are_held_over_every_rolling_minute(client: aioredis.Redis) -> None:
    """The limit spent in the last second of one minute, then hammered from the first second
    of the next one on: no real 60-second interval ever holds more than the limit."""
    clock = Clock()
    limiter = _limiter(client, clock)
    minute = (clock.now // 60_000 + 1) * 60_000
    served: list[int] = []
    clock.now = minute - 900
    for i in range(100):  # spent in the last second of the minute
        clock.now = minute - 900 + i * 8
        if (await limiter.hit("team-starter", "tm_e", 100)).allowed:
            served.append(clock.now)
    limiter._refused.clear()  # ask Redis every time: this test is about the script
    t = minute
    while t < minute + 130_000:  # then 20 attempts per second for two minutes
        clock.now = t
        if (await limiter.hit("team-starter", "tm_e", 100)).allowed:
            served.append(t)
        limiter._refused.clear()
        t += 50
    assert len(served) >= 250  # it kept serving as the window moved
    assert _max_in_any_window(served) <= 100


async def test_a_client_pacing_under_the_limit_is_never_refused(client: aioredis.Redis) -> None:
    clock = Clock()
    limiter = _limiter(client, clock)
    rng = random.Random(13)
    gap = 60_000 / 95
    for i in range(190):  # 95 a minute for two minutes, jittered
        clock.now += int(gap + rng.uniform(-0.3, 0.3) * gap) if i else 0
        decision = await limiter.hit("team-starter", "tm_p", 100)
        assert decision.allowed, f"request {i} refused"


async def test_raising_the_limit_applies_to_the_next_request(client: aioredis.Redis) -> None:
    limiter = _limiter(client)
    for _ in range(100):
        await limiter.hit("team-starter", "tm_u", 100, scope="team")
    assert not (await limiter.hit("team-starter", "tm_u", 100, scope="team")).allowed
    upgraded = await limiter.hit("team-professional", "tm_u", 1_000, scope="team")
    assert upgraded.allowed
    assert upgraded.remaining == 1_000 - 101  # the count carries over; only the limit changed


async def test_an_over_limit_subject_costs_no_redis_until_its_window_frees(client: aioredis.Redis) -> None:
    clock = Clock()
    limiter = _limiter(client, clock)
    for _ in range(3):
        await limiter.hit("team-starter", "tm_f", 3)
    first = await limiter.hit("team-starter", "tm_f", 3)
    trips = limiter.redis_round_trips
    flood = [await limiter.hit("team-starter", "tm_f", 3) for _ in range(500)]
    assert not any(d.allowed for d in flood)
    assert {d.mode for d in flood} == {"cached"}
    assert limiter.redis_round_trips == trips
    clock.now += first.retry_after * 1000
    assert (await limiter.hit("team-starter", "tm_f", 3)).allowed
    assert limiter.redis_round_trips == trips + 1


async def test_exceeded_is_reported_once_per_episode_across_replicas(client: aioredis.Redis) -> None:
    clock = Clock()
    prefix = f"t:{uuid.uuid4().hex}"
    reports: list[tuple[str, str]] = []

    def report(policy: str, subject: str, decision: Decision) -> None:
        reports.append((policy, subject))

    replicas = [RateLimiter(client, prefix=prefix, clock_ms=clock, on_exceeded=report) for _ in range(3)]
    for i in range(30):
        await replicas[i % 3].hit("team-starter", "tm_x", 5)
    assert reports == [("team-starter", "tm_x")]
    clock.now += WINDOW_MS + 2 * BUCKET_MS  # the window freed up; a new episode
    for i in range(30):
        await replicas[i % 3].hit("team-starter", "tm_x", 5)
    assert len(reports) == 2


async def test_revocation_is_asked_in_the_same_round_trip(client: aioredis.Redis) -> None:
    limiter = _limiter(client)
    sid_key = f"deelrx:revoked:ses_{uuid.uuid4().hex}"
    assert (await limiter.hit("p", "u", 10, sid_key)).revoked is False
    await client.set(sid_key, 1, ex=60)
    assert (await limiter.hit("p", "u", 10, sid_key)).revoked is True
    assert limiter.redis_round_trips == 2


async def test_a_flushed_script_is_loaded_again(client: aioredis.Redis) -> None:
    limiter = _limiter(client)
    await client.script_flush()
    assert (await limiter.hit("p", "s", 10)).allowed
    await client.script_flush()
    assert (await limiter.hit("p", "s", 10, "deelrx:revoked:none")).remaining == 8


async def test_memory_per_subject_is_bounded_for_an_enterprise_team(client: aioredis.Redis) -> None:
    """10,000 requests spread over a minute: at most one field per 250 ms bucket."""
    clock = Clock()
    limiter = _limiter(client, clock)
    for _ in range(10_000):
        clock.now += 6
        limiter._refused.clear()
        await limiter.hit("team-enterprise", "tm_big", 10_000)
    key = limiter.key("team-enterprise", "tm_big")
    assert await client.hlen(key) <= WINDOW_MS // BUCKET_MS + 1 + 3
    assert await client.memory_usage(key) < 32 * 1024
    assert 0 < await client.pttl(key) <= WINDOW_MS + 2 * BUCKET_MS
