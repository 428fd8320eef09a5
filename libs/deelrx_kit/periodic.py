"""Background work repeated every few seconds until the process stops."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("deelrx.periodic")


async def run_every(
    interval: float | Callable[[], float],
    fn: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    name: str,
    wait_first: bool = False,
    jitter: float = 0.0,
) -> None:
    """Call `fn` every `interval` seconds until `stop` is set; return as soon as it is.

    A failure is logged as `<name>_failed` and the next round tries again: one database or
    network hiccup must not end the loop. `interval` may be a function, read before each
    wait (e.g. shorter until a first success). `wait_first` waits one interval before the
    first call. `jitter` (a fraction, e.g. 0.1) spreads each wait by up to ±that share, so
    replicas started together do not all act at the same moment.
    """
    if wait_first and await _stopped_within(_wait(interval, jitter), stop):
        return
    while not stop.is_set():
        try:
            await fn()
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning(f"{name}_failed", error=str(exc))
        if await _stopped_within(_wait(interval, jitter), stop):
            return


def _wait(interval: float | Callable[[], float], jitter: float) -> float:
    seconds = interval() if callable(interval) else interval
    if jitter:
        seconds *= 1 + random.uniform(-jitter, jitter)
    return max(seconds, 0.0)


async def wait_any(*events: asyncio.Event, seconds: float) -> None:
    """Wait until one of `events` is set, or `seconds` passed."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def _stopped_within(seconds: float, stop: asyncio.Event) -> bool:
    """Wait up to `seconds`; True when `stop` was set meanwhile (or already)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
