"""The sessions replica's periodic work, once a minute: the signing-key schedule, forgetting
sealed successors past the grace, and writing recent revocations to Redis again after a failed
write. (Ended sessions and their tokens are purged by services/sessions/purge.py.)"""

from __future__ import annotations

import asyncio

from deelrx_kit.periodic import run_every
from services.sessions.refresh import Refresh
from services.sessions.revocation import Revocation
from services.sessions.signing import SigningKeys

MAINTENANCE_INTERVAL_SECONDS = 60.0


async def maintain(keys: SigningKeys, refresh: Refresh, revocation: Revocation) -> None:
    await keys.maintain()
    await refresh.forget_stale_successors()
    await revocation.announce_again_if_behind()


async def maintenance_loop(keys: SigningKeys, refresh: Refresh, revocation: Revocation, stop: asyncio.Event) -> None:
    # A failed round (a DB hiccup) is logged and the next one tries again.
    await run_every(MAINTENANCE_INTERVAL_SECONDS, lambda: maintain(keys, refresh, revocation), stop, name="maintenance")
