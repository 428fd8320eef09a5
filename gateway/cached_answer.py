"""An answer computed at most once per `ttl` seconds, however many callers ask at once.

Public endpoints that fan out (readiness asks four services and Redis) serve this, so a flood
of requests costs the dependencies one round per second, not one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class CachedAnswer(Generic[T]):
    def __init__(self, ttl_seconds: float = 1.0) -> None:
        self.ttl = ttl_seconds
        self._value: T | None = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._at < self.ttl

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        if self._value is not None and self._fresh():
            return self._value
        async with self._lock:  # one computation; concurrent callers wait for it
            if self._value is None or not self._fresh():
                self._value = await compute()
                self._at = time.monotonic()
            return self._value
