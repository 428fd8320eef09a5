"""The argon2id adapter: hashes queue at the core count instead of all running at once."""

from __future__ import annotations

import asyncio
import os

from services.identity.adapters.argon2_hasher import Argon2Hasher


async def test_concurrent_hashes_are_capped_at_the_semaphore() -> None:
    hasher = Argon2Hasher(time_cost=1, memory_cost_kib=2048, parallelism=1, concurrency=2)
    hashes = await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(12)))
    assert hasher.peak == 2 and hasher.running == 0
    assert await hasher.verify(hashes[3], "password-3")
    assert not await hasher.verify(hashes[3], "password-4")


def test_the_default_cap_is_the_number_of_usable_cores() -> None:
    assert Argon2Hasher(1, 1024, 1).concurrency == len(os.sched_getaffinity(0))


def test_needs_rehash_when_parameters_change() -> None:
    old = Argon2Hasher(1, 1024, 1)
    new = Argon2Hasher(2, 19456, 1)
    stored = old._hasher.hash("pw")
    assert new.needs_rehash(stored) and not old.needs_rehash(stored)
