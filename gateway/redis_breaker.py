"""A circuit breaker in front of Redis: a short deadline on every call, and once a call
fails or times out, no request asks Redis again until a background probe (`PING`) succeeds.

A Redis that hangs (SIGSTOP, a full network buffer) then costs one deadline per replica,
not seconds per request. The switch to degraded mode and back is logged once each way,
counted in `/metrics` and shown in the admin `/readyz` details.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

log = structlog.get_logger("deelrx.gateway.redis")

T = TypeVar("T")

REDIS_DEGRADED = Gauge("deelrx_gateway_redis_degraded", "1 while the gateway does not ask Redis (circuit open)")
REDIS_TRIPS = Counter("deelrx_gateway_redis_breaker_trips_total", "Times the gateway stopped asking Redis")
REDIS_FAILURES = Counter("deelrx_gateway_redis_failures_total", "Redis calls that failed or timed out", ["kind"])

# What a failing Redis raises; anything else is a bug and propagates.
FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError, asyncio.TimeoutError)


class RedisUnavailable(Exception):
    """Redis was not asked (circuit open) or did not answer in time."""


class RedisBreaker:
    def __init__(
        self,
        ping: Callable[[], Awaitable[Any]],
        *,
        timeout: float = 0.25,
        probe_interval: float = 0.5,
    ) -> None:
        self._ping = ping
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.hard_limit = max(timeout * 8, 2.0)
        self._open_since: float | None = None
        self._last_answer = time.monotonic()
        self._answered = False
        self._probe: asyncio.Task[None] | None = None
        self.last_error = ""

    @property
    def is_open(self) -> bool:
        return self._open_since is not None

    def status(self) -> dict[str, Any]:
        if self._open_since is None:
            return {"state": "closed"}
        return {
            "state": "open",
            "open_for_seconds": round(time.monotonic() - self._open_since, 1),
            "last_error": self.last_error,
        }

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """`make()` under the deadline; RedisUnavailable when the circuit is open or it fails.

        The deadline measures Redis's silence, not one call's wait: a call that is slow while
        Redis keeps answering others (a burst queued on the event loop or the pool) waits on,
        up to `hard_limit`; one that waits while nothing at all comes back from Redis for
        `timeout` trips the breaker.
        """
        if self._open_since is not None:
            raise RedisUnavailable("circuit open")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            # A timer, not a task per call: it re-arms while Redis keeps answering others and
            # expires the call once Redis has been silent for `timeout`.
            async with asyncio.timeout(None) as deadline:

                def check() -> None:
                    nonlocal timer
                    silence = self.timeout if self._answered else self.hard_limit
                    waited = loop.time() - started
                    if time.monotonic() - self._last_answer >= silence or waited >= self.hard_limit:
                        deadline.reschedule(loop.time())
                    else:
                        timer = loop.call_later(self.timeout, check)

                timer = loop.call_later(self.timeout, check)
                try:
                    result = await make()
                finally:
                    timer.cancel()
        except FAILURES as exc:
            kind = "timeout" if isinstance(exc, TimeoutError | asyncio.TimeoutError) else type(exc).__name__
            REDIS_FAILURES.labels(kind).inc()
            self.trip(f"{kind}: {exc or 'no answer in time'}"[:200])
            raise RedisUnavailable(kind) from exc
        self._last_answer = time.monotonic()
        self._answered = True
        return result

    def trip(self, reason: str) -> None:
        if self._open_since is not None:
            return
        self._open_since = time.monotonic()
        self.last_error = reason
        REDIS_TRIPS.inc()
        REDIS_DEGRADED.set(1)
        log.error("redis_unavailable_degraded_mode", reason=reason, note="local rate limits until Redis answers")
        with contextlib.suppress(RuntimeError):  # no running loop: the next call trips again
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_closed())

    async def _probe_until_closed(self) -> None:
        while self._open_since is not None:
            await asyncio.sleep(self.probe_interval)
            try:
                await asyncio.wait_for(self._ping(), timeout=max(self.timeout, 0.5))
            except FAILURES as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                continue
            self._last_answer = time.monotonic()
            down_for = time.monotonic() - self._open_since
            self._open_since = None
            REDIS_DEGRADED.set(0)
            log.warning("redis_available_again", degraded_seconds=round(down_for, 1))

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
