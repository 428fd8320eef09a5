"""argon2id through argon2-cffi, always off the event loop, at most one hash per core at once.

Each hash takes `memory_cost` KiB for its whole duration; a burst of logins therefore queues on
a semaphore sized to the cores instead of running 64 threads x 64 MiB, and the event loop stays
free for the authenticated traffic of everyone else.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from deelrx_kit.settings import Settings

T = TypeVar("T")


class Argon2Hasher:
    def __init__(
        self, time_cost: int, memory_cost_kib: int, parallelism: int, *, concurrency: int | None = None
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism, type=Type.ID
        )
        # Made once at start: made lazily, the first unknown-address login after a restart
        # would cost two argon2 runs instead of one (an enumeration signal).
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))
        self.concurrency = max(1, concurrency or len(os.sched_getaffinity(0)))
        self._slots = asyncio.Semaphore(self.concurrency)
        self.running = 0  # hashes in progress now (observed by tests and metrics)
        self.peak = 0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._slots:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                return await asyncio.to_thread(fn, *args)
            finally:
                self.running -= 1

    @classmethod
    def from_settings(cls, settings: Settings) -> Argon2Hasher:
        return cls(settings.argon2_time_cost, settings.argon2_memory_cost_kib, settings.argon2_parallelism)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    async def verify_dummy(self, password: str) -> bool:
        """Spend the same work as a real check when there is no hash to check against."""
        await self.verify(self._dummy, password)
        return False
