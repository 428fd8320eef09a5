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
        timeout: float = 0.5,
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
        self._watchdog: asyncio.Task[None] | None = None
        self._calls: dict[asyncio.Task[Any], float] = {}  # waiting on Redis -> since
        self._expired: set[asyncio.Task[Any]] = set()
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
        up to `hard_limit`; once nothing at all has come back from Redis for `timeout`, a
        watchdog (one per process, not a timer per call) cancels the waiting calls and trips.
        """
        if self._open_since is not None:
            raise RedisUnavailable("circuit open")
        task = asyncio.current_task()
        assert task is not None
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        self._calls[task] = time.monotonic()
        try:
            result = await make()
        except asyncio.CancelledError:
            if task not in self._expired:
                raise  # cancelled by its owner: not ours to swallow
            self._expired.discard(task)
            task.uncancel()
            REDIS_FAILURES.labels("timeout").inc()
            raise RedisUnavailable("timeout") from None
        except FAILURES as exc:
            kind = "timeout" if isinstance(exc, TimeoutError | asyncio.TimeoutError) else type(exc).__name__
            REDIS_FAILURES.labels(kind).inc()
            self.trip(f"{kind}: {exc}"[:200])
            raise RedisUnavailable(kind) from exc
        finally:
            self._calls.pop(task, None)
        self._last_answer = time.monotonic()
        self._answered = True
        return result

    async def _watch(self) -> None:
        """Expire the calls that wait on a silent Redis (or longer than `hard_limit`)."""
        tick = self.timeout / 5
        while True:
            expected = time.monotonic() + tick
            await asyncio.sleep(tick)
            if not self._calls or time.monotonic() - expected > tick:
                # Nothing waits, or this process itself was starved of CPU: answers may be
                # sitting unread in its sockets. Judge on the next, timely tick.
                continue
            if not self._late():
                continue
            for _ in range(3):  # let replies already received reach their callers first
                await asyncio.sleep(0)
            if not self._late():
                continue
            self.trip(f"timeout: no answer from Redis in {self.timeout:.3f}s")
            # Open now: every call still waiting would wait for nothing.
            for t in list(self._calls):
                if t not in self._expired and not t.done():
                    self._expired.add(t)
                    t.cancel()

    def _late(self) -> bool:
        now = time.monotonic()
        silence = self.timeout if self._answered else self.hard_limit
        silent = now - self._last_answer >= silence
        return any(
            (silent and now - started >= self.timeout) or now - started >= self.hard_limit
            for started in self._calls.values()
        )

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
        for task in (self._probe, self._watchdog):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
