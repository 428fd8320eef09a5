"""The latency a rate limiter adds to a request, and the Redis round trips it costs, for the
gateway's limiter next to the `limits` library's moving-window and sliding-window-counter
limiters, on the same Redis in the same run (`pip install -e '.[bench]'`).

Each limiter serves the same load, in `ROUNDS` alternating rounds: `CONCURRENCY` concurrent
callers, `REQUESTS` decisions spread over `TEAMS` teams at the enterprise limit (10,000/min, so nothing is refused and
every decision is a real check-and-count). "+ headers" is what serving the RateLimit headers
costs with `limits` (`hit` then `get_window_stats`); the gateway's script answers both at once
and also carries the revocation lookup in the same round trip.

Run alone: `python -m bench.ratelimit_bench` (starts its own redis-server on loopback).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from deelrx_kit.redis_url import connect_redis
from deploy.local import infra
from gateway.ratelimit import RateLimiter
from gateway.redis_breaker import RedisBreaker

REQUESTS = 3000
ROUNDS = 3
CONCURRENCY = 16
TEAMS = 50
LIMIT = 10_000


async def _commands(client: Any) -> int:
    stats = await client.info("stats")
    return int(stats["total_commands_processed"])


async def _measure(name: str, client: Any, decide: Callable[[int], Awaitable[Any]], trips: Callable[[], int]) -> dict:
    for i in range(200):  # warm connections and scripts
        await decide(i)
    samples: list[float] = []
    counter = iter(range(REQUESTS))
    before_cmds, before_trips = await _commands(client), trips()

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await decide(i)
            samples.append(time.perf_counter() - started)

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall = time.perf_counter() - begin
    commands = await _commands(client) - before_cmds - 1  # the INFO itself
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    return {
        "name": name,
        "requests": len(samples),
        "concurrency": CONCURRENCY,
        "decisions_per_s": round(len(samples) / wall),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
        "redis_commands_per_request": round(commands / len(samples), 2),
        "redis_round_trips_per_request": round((trips() - before_trips) / len(samples), 2),
    }


async def run(redis_url: str) -> list[dict]:
    from limits import RateLimitItemPerMinute
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

    results = []
    ours_client = connect_redis(redis_url)
    ours = RateLimiter(ours_client, breaker=RedisBreaker(ours_client.ping, timeout=1.0), prefix=f"b:{uuid.uuid4().hex}")

    async def gateway_limiter(i: int) -> None:
        await ours.hit("team-enterprise", f"tm_{i % TEAMS}", LIMIT, scope="team")

    async def gateway_with_revocation(i: int) -> None:
        await ours.hit("team-enterprise", f"tm_{i % TEAMS}", LIMIT, f"deelrx:revoked:ses_{i % 500}", scope="team")

    storage = RedisStorage("async+" + redis_url, implementation="redispy", key_prefix=f"lb{uuid.uuid4().hex[:6]}")
    item = RateLimitItemPerMinute(LIMIT)
    calls = [0]
    cases: list[tuple[str, Callable[[int], Awaitable[Any]], Callable[[], int]]] = [
        ("gateway (buckets; + headers)", gateway_limiter, lambda: ours.redis_round_trips),
        ("gateway (+ headers + revocation)", gateway_with_revocation, lambda: ours.redis_round_trips),
    ]
    for label, strategy in (
        ("limits moving window", MovingWindowRateLimiter(storage)),
        ("limits sliding window counter", SlidingWindowCounterRateLimiter(storage)),
    ):

        async def hit(i: int, s: Any = strategy) -> None:
            calls[0] += 1
            await s.hit(item, "team", f"tm_{i % TEAMS}")

        async def hit_and_stats(i: int, s: Any = strategy) -> None:
            calls[0] += 2
            await s.hit(item, "team", f"tm_{i % TEAMS}")
            await s.get_window_stats(item, "team", f"tm_{i % TEAMS}")

        # `limits` sends one command per call, never pipelined: round trips = calls.
        cases.append((label, hit, lambda: calls[0]))
        cases.append((f"{label} + headers", hit_and_stats, lambda: calls[0]))
    # Rounds alternate the limiters, so drifting machine load hits them alike; the median
    # round (by p99) is reported for each.
    rounds: dict[str, list[dict]] = {name: [] for name, _, _ in cases}
    for _ in range(ROUNDS):
        for name, decide, trips in cases:
            rounds[name].append(await _measure(name, ours_client, decide, trips))
    for runs in rounds.values():
        results.append(sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2])
    await ours_client.aclose()
    return results


def print_table(results: list[dict]) -> None:
    print(f"\n{'limiter':<44} {'p50 ms':>8} {'p99 ms':>8} {'dec/s':>7} {'cmds/req':>9} {'trips/req':>10}")
    for r in results:
        print(
            f"{r['name']:<44} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['decisions_per_s']:>7} "
            f"{r['redis_commands_per_request']:>9} {r['redis_round_trips_per_request']:>10}"
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="deelrx-rl-bench-") as tmp:
        server = infra.start_redis(Path(tmp))
        try:
            results = asyncio.run(run(server.url))
        finally:
            server.stop()
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
