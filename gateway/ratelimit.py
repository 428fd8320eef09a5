"""Rate limits shared by every gateway replica: a rolling-minute bucket counter in Redis
(gateway/ratelimit_script.py), one round trip per request, Redis's clock.

- A subject that was refused is answered from this process's memory until its window frees
  up, without asking Redis (a flood from one over-limit team costs no Redis traffic).
- When Redis cannot answer (the breaker in gateway/redis_breaker.py is open), each replica
  counts locally with its share of the limit (limit / DEELRX_GATEWAY_REPLICAS): degraded,
  never unlimited.
- The session revocation lookup rides in the same pipeline as a separate `EXISTS` (a
  different key, so it may live on another cluster node; still one round trip).
Headers: draft-ietf-httpapi-ratelimit-headers-11 (`RateLimit-Policy`, `RateLimit`).
See docs/rate-limits.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter
from redis.exceptions import NoScriptError

from deelrx_kit import redis_keys
from gateway import change_revisions
from gateway.local_window import LocalWindow, share_of
from gateway.ratelimit_script import LUA
from gateway.redis_breaker import RedisBreaker, RedisUnavailable

log = structlog.get_logger("deelrx.gateway.ratelimit")
DECISIONS = Counter(
    "deelrx_rate_limit_decisions_total",
    "Rate-limit decisions by where they were taken (shared: Redis; cached: known over-limit; "
    "local: degraded mode) and outcome",
    ["mode", "outcome"],
)

ROUND_TRIPS = Counter(
    "deelrx_rate_limit_redis_round_trips_total",
    "Round trips to Redis made by the rate limiter (each carries the revocation check and change revisions)",
)

_COUNTED = {(m, o): DECISIONS.labels(m, o) for m in ("shared", "cached", "local") for o in ("allowed", "refused")}

WINDOW_SECONDS = 60
WINDOW_MS = WINDOW_SECONDS * 1000
BUCKET_MS = 250
SCRIPT_SHA = hashlib.sha1(LUA.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
MAX_REFUSED_ENTRIES = 50_000
# Calls in flight to Redis per process: a burst queues here and reuses warm connections
# instead of opening hundreds (redis-py's pools open a connection per waiting call).
MAX_IN_FLIGHT = 16


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy: str
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int
    # Whether the session named by `revoked_key` is revoked, asked in the same round trip;
    # None when Redis was not asked.
    revoked: bool | None = None
    # Taken without Redis: "shared" (Redis), "cached" (known over-limit) or "local" (degraded).
    mode: str = "shared"
    first_refusal: bool = False
    # Values of the `watch` keys, read in the same round trip (None when Redis was not asked, or
    # a key vanished between its creation and its read: unknown).
    watched: tuple[str, ...] | None = None

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={self.reset_seconds}',
        }


ExceededHook = Callable[[str, str, "Decision"], None]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(ms: int | float) -> int:
    return max(math.ceil(ms / 1000), 0)


class RateLimiter:
    def __init__(
        self,
        redis: Any,
        *,
        breaker: RedisBreaker | None = None,
        replicas: int = 1,
        prefix: str = redis_keys.RATE_LIMIT_PREFIX,
        clock_ms: Callable[[], int] | None = None,
        on_exceeded: ExceededHook | None = None,
    ) -> None:
        self._redis = redis
        self.breaker = breaker or RedisBreaker(redis.ping)
        self.replicas = max(1, replicas)
        self._prefix = prefix
        # Tests only: a controllable clock instead of Redis TIME (and of the local clock).
        self._clock_ms = clock_ms
        self.on_exceeded = on_exceeded
        self._local = LocalWindow(WINDOW_MS, BUCKET_MS, clock_ms=clock_ms)
        self._refused: dict[str, tuple[float, int, int]] = {}  # key -> (until, limit, reset_s)
        self.redis_round_trips = 0
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    @property
    def degraded(self) -> bool:
        return self.breaker.is_open

    def status(self) -> dict[str, Any]:
        return {
            "mode": "local" if self.degraded else "shared",
            "replicas": self.replicas,
            "redis": self.breaker.status(),
            "known_over_limit": len(self._refused),
        }

    def key(self, scope: str, subject: str) -> str:
        # One hash tag per subject: every key the script touches lives in one cluster slot.
        return f"{self._prefix}:{{{scope}:{subject}}}"

    def _now(self) -> float:
        return self._clock_ms() / 1000 if self._clock_ms is not None else time.monotonic()

    async def hit(
        self,
        policy: str,
        subject: str,
        limit: int,
        revoked_key: str | None = None,
        *,
        scope: str | None = None,
        watch: tuple[str, ...] = (),
    ) -> Decision:
        """Count one request for `subject` under `policy` (the counter is keyed by `scope`,
        default `policy`, so a team keeps its count when its plan changes). The `watch` keys
        (change revisions, created when missing) are read in the same round trip
        (gateway/change_revisions.py)."""
        key = self.key(scope or policy, subject)
        cached = self._cached_refusal(key, policy, limit)
        if cached is not None:
            _COUNTED["cached", "refused"].inc()
            return cached
        try:
            raw, revoked, watched = await self.breaker.call(lambda: self._ask_redis(key, limit, revoked_key, watch))
        except RedisUnavailable:
            return self._decide_locally(key, policy, subject, limit)
        allowed, remaining, retry_ms, reset_ms, first = (int(v) for v in raw)
        decision = Decision(
            bool(allowed),
            policy,
            limit,
            max(remaining, 0),
            _seconds(reset_ms),
            max(_seconds(retry_ms), 1) if not allowed else 0,
            revoked=revoked,
            first_refusal=bool(first),
            watched=watched,
        )
        _COUNTED["shared", "allowed" if allowed else "refused"].inc()
        if not allowed:
            self._remember_refusal(key, limit, retry_ms)
        self._report(policy, subject, decision)
        return decision

    async def _ask_redis(
        self, key: str, limit: int, revoked_key: str | None, watch: tuple[str, ...]
    ) -> tuple[list[Any], bool | None, tuple[str, ...] | None]:
        async with self._in_flight:
            return await self._ask_redis_now(key, limit, revoked_key, watch)

    async def _ask_redis_now(
        self, key: str, limit: int, revoked_key: str | None, watch: tuple[str, ...]
    ) -> tuple[list[Any], bool | None, tuple[str, ...] | None]:
        args = (limit, WINDOW_MS, BUCKET_MS, "" if self._clock_ms is None else self._clock_ms())
        self.redis_round_trips += 1
        ROUND_TRIPS.inc()
        if revoked_key is None and not watch:
            try:
                return await self._redis.evalsha(SCRIPT_SHA, 1, key, *args), None, None
            except NoScriptError:
                return await self._redis.eval(LUA, 1, key, *args), None, None
        pipe = self._redis.pipeline(transaction=False)
        # (execute_command: a cluster pipeline refuses the evalsha() helper, not the command.)
        pipe.execute_command("EVALSHA", SCRIPT_SHA, 1, key, *args)
        if revoked_key is not None:
            pipe.execute_command("EXISTS", revoked_key)
        for watched_key in watch:  # commands per key: the keys may live on different cluster nodes
            change_revisions.queue_read(pipe, watched_key)
        results = await pipe.execute(raise_on_error=False)
        raw = results[0]
        if isinstance(raw, NoScriptError):  # first call after a Redis restart: load it once
            self.redis_round_trips += 1
            ROUND_TRIPS.inc()
            raw = await self._redis.eval(LUA, 1, key, *args)
        for result in (raw, *results[1:]):
            if isinstance(result, BaseException):
                raise result
        revoked = bool(results[1]) if revoked_key is not None else None
        # Each key's (SET NX, GET) pair: the GET's answer. None (deleted in between): unknown.
        values = results[2 if revoked_key is not None else 1 :][1::2]
        known = bool(watch) and all(v is not None for v in values)
        return raw, revoked, tuple(_text(v) for v in values) if known else None

    def _cached_refusal(self, key: str, policy: str, limit: int) -> Decision | None:
        entry = self._refused.get(key)
        if entry is None:
            return None
        until, refused_limit, _ = entry
        now = self._now()
        if until <= now or limit > refused_limit:  # window freed, or the plan was raised
            del self._refused[key]
            return None
        wait = max(math.ceil(until - now), 1)
        return Decision(False, policy, limit, 0, wait, wait, mode="cached")

    def _remember_refusal(self, key: str, limit: int, retry_ms: int) -> None:
        now = self._now()
        if len(self._refused) >= MAX_REFUSED_ENTRIES:
            for stale in [k for k, (until, _, _) in self._refused.items() if until <= now]:
                del self._refused[stale]
            if len(self._refused) >= MAX_REFUSED_ENTRIES:
                return  # bounded memory: such keys are simply asked in Redis again
        self._refused[key] = (now + retry_ms / 1000, limit, _seconds(retry_ms))

    def _decide_locally(self, key: str, policy: str, subject: str, limit: int) -> Decision:
        result = self._local.hit(key, share_of(limit, self.replicas))
        decision = Decision(
            result.allowed,
            policy,
            limit,
            result.remaining,
            _seconds(result.reset_ms),
            max(_seconds(result.retry_after_ms), 1) if not result.allowed else 0,
            mode="local",
            first_refusal=result.first_refusal,
        )
        _COUNTED["local", "allowed" if result.allowed else "refused"].inc()
        self._report(policy, subject, decision)
        return decision

    def _report(self, policy: str, subject: str, decision: Decision) -> None:
        if decision.first_refusal and self.on_exceeded is not None:
            try:
                self.on_exceeded(policy, subject, decision)
            except Exception as exc:  # noqa: BLE001 - reporting never fails the request
                log.warning("ratelimit_report_failed", error=str(exc))
