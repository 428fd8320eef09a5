"""argon2id through argon2-cffi, always off the event loop."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from deelrx_kit.settings import Settings


class Argon2Hasher:
    def __init__(self, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Argon2Hasher:
        return cls(settings.argon2_time_cost, settings.argon2_memory_cost_kib, settings.argon2_parallelism)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    async def verify_dummy(self, password: str) -> bool:
        """Spend the same work as a real check when there is no hash to check against."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(24))
        await self.verify(self._dummy, password)
        return False
