"""The sessions replica's periodic work, once a minute: the signing-key schedule, forgetting
sealed successors past the grace, and writing recent revocations to Redis again after a failed
write. (Ended sessions and their tokens are purged by services/sessions/purge.py.)"""

from __future__ import annotations

import asyncio

import structlog

from services.sessions.refresh import Refresh
from services.sessions.revocation import Revocation
from services.sessions.signing import SigningKeys

log = structlog.get_logger(__name__)

MAINTENANCE_INTERVAL_SECONDS = 60.0


async def maintain(keys: SigningKeys, refresh: Refresh, revocation: Revocation) -> None:
    await keys.maintain()
    await refresh.forget_stale_successors()
    await revocation.announce_again_if_behind()


async def maintenance_loop(keys: SigningKeys, refresh: Refresh, revocation: Revocation, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await maintain(keys, refresh, revocation)
        except Exception as exc:  # noqa: BLE001 - a DB hiccup must not end the loop
            log.warning("maintenance_failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=MAINTENANCE_INTERVAL_SECONDS)
        except TimeoutError:
            pass
