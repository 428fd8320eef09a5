"""periodic.run_every: repeats until stopped, survives failures, returns once stopped."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from deelrx_kit import periodic
from deelrx_kit.periodic import run_every

BOUND = 10  # seconds a loop may take before the test calls it hung (never reached when correct)


async def test_runs_every_round_until_stop() -> None:
    stop = asyncio.Event()
    calls = 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()

    await asyncio.wait_for(run_every(0, fn, stop, name="t"), BOUND)
    assert calls == 3


async def test_a_failure_is_logged_and_the_next_round_runs() -> None:
    stop = asyncio.Event()
    calls = 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        stop.set()

    with capture_logs() as logs:
        await asyncio.wait_for(run_every(0, fn, stop, name="purge"), BOUND)
    assert calls == 2
    assert [(e["event"], e["error"]) for e in logs] == [("purge_failed", "database away")]


async def test_stop_ends_a_long_wait_at_once() -> None:
    stop = asyncio.Event()

    async def fn() -> None:
        stop.set()  # set while the loop is about to wait an hour

    await asyncio.wait_for(run_every(3600, fn, stop, name="t"), BOUND)


async def test_wait_first_waits_before_the_first_call() -> None:
    stop = asyncio.Event()
    calls = 0
    waits: list[float] = []

    def interval() -> float:
        waits.append(calls)
        return 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        stop.set()

    await asyncio.wait_for(run_every(interval, fn, stop, name="t", wait_first=True), BOUND)
    assert calls == 1 and waits == [0, 1]  # a wait before the first call, then one after it


async def test_already_stopped_calls_nothing() -> None:
    stop = asyncio.Event()
    stop.set()

    async def fn() -> None:
        raise AssertionError("called after stop")

    await asyncio.wait_for(run_every(0, fn, stop, name="t"), BOUND)
    await asyncio.wait_for(run_every(0, fn, stop, name="t", wait_first=True), BOUND)


async def test_the_interval_is_read_before_every_wait() -> None:
    stop = asyncio.Event()
    seen: list[int] = []
    state = {"n": 0}

    def interval() -> float:
        seen.append(state["n"])
        return 0

    async def fn() -> None:
        state["n"] += 1
        if state["n"] == 3:
            stop.set()

    await asyncio.wait_for(run_every(interval, fn, stop, name="t"), BOUND)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5])
def test_jitter_stays_within_its_share(jitter: float) -> None:
    waits = [periodic._wait(10.0, jitter) for _ in range(200)]
    assert all(10 * (1 - jitter) <= w <= 10 * (1 + jitter) for w in waits)
    if jitter:
        assert len(set(waits)) > 1
    else:
        assert set(waits) == {10.0}
