"""Degraded mode against a dedicated redis-server that the test pauses (SIGSTOP), stops
and starts again: bounded waits, local limits, no Redis traffic while the breaker is open,
and back to shared limits by itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from deelrx_kit.errors import DomainError
from deelrx_kit.redis_url import connect_redis
from gateway.ratelimit import RateLimiter
from gateway.redis_breaker import RedisBreaker
from gateway.revocation import RevocationSet
from tests.integration.gateway.redis_servers import RedisServer
from tests.integration.harness import eventually

TIMEOUT = 0.1


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis").start()
    yield s
    s.stop()


def _limiter(url: str, replicas: int = 2) -> RateLimiter:
    client = connect_redis(url)
    breaker = RedisBreaker(client.ping, timeout=TIMEOUT, probe_interval=0.1)
    return RateLimiter(client, breaker=breaker, replicas=replicas, prefix=f"t:{uuid.uuid4().hex}")


async def test_a_paused_redis_costs_one_deadline_then_local_limits_apply(server: RedisServer) -> None:
    limiter = _limiter(server.url, replicas=2)
    assert (await limiter.hit("team-starter", "tm_1", 10)).mode == "shared"
    server.pause()
    try:
        started = time.monotonic()
        first = await limiter.hit("team-starter", "tm_1", 10)
        assert first.mode == "local"
        assert time.monotonic() - started < TIMEOUT + 0.5
        assert REGISTRY.get_sample_value("deelrx_gateway_redis_degraded") == 1
        trips = limiter.redis_round_trips
        waits, decisions = [], []
        for _ in range(20):
            t = time.monotonic()
            decisions.append(await limiter.hit("team-starter", "tm_1", 10))
            waits.append(time.monotonic() - t)
        assert max(waits) < 0.25  # nobody waits for the paused Redis any more
        assert limiter.redis_round_trips == trips  # ... nor asks it
        # Never unlimited: this replica's share of 10 over 2 replicas, the first local one included.
        assert sum(d.allowed for d in [first, *decisions]) == 5
        assert limiter.status()["mode"] == "local"
    finally:
        server.resume()
    await eventually(lambda: not limiter.degraded)
    assert (await limiter.hit("team-starter", "tm_2", 10)).mode == "shared"
    assert REGISTRY.get_sample_value("deelrx_gateway_redis_degraded") == 0
    await limiter.breaker.close()


async def test_a_stopped_redis_degrades_and_a_restarted_one_is_used_again(server: RedisServer) -> None:
    limiter = _limiter(server.url, replicas=1)
    assert (await limiter.hit("p", "s", 3)).mode == "shared"
    server.stop()
    decisions = [await limiter.hit("p", "s", 3) for _ in range(5)]
    assert [d.mode for d in decisions] == ["local"] * 5
    assert [d.allowed for d in decisions] == [True] * 3 + [False] * 2
    assert decisions[-1].retry_after >= 1
    server.start()
    await eventually(lambda: not limiter.degraded)
    assert (await limiter.hit("p", "s", 3)).mode == "shared"
    await limiter.breaker.close()


async def test_an_undecidable_revocation_is_a_503_not_a_logout(server: RedisServer) -> None:
    client = connect_redis(server.url)
    breaker = RedisBreaker(client.ping, timeout=TIMEOUT, probe_interval=0.1)
    revocations = RevocationSet(client, ttl_seconds=60, breaker=breaker)
    revocations.connected = False  # no NATS feed: Redis decides
    assert await revocations.is_revoked("ses_x") is False
    server.pause()
    try:
        with pytest.raises(DomainError) as refused:
            await revocations.is_revoked("ses_x")
        assert refused.value.code == "unavailable" and refused.value.retry_after_seconds
        revocations.connected = True  # with the NATS feed up and heartbeats fresh, Redis is not needed
        revocations.on_heartbeat("rep_a", time.time())
        assert await revocations.is_revoked("ses_x") is False
    finally:
        server.resume()
    await breaker.close()
