"""What every integration test of a service needs: its settings, the DomainError a failing gRPC
call carried, polling until an asynchronous effect shows, and the audit events published on NATS
since the test began (a live subscription, never a replay of the whole stream)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from deelrx.audit.v1 import audit_pb2
from deelrx_kit.errors import DomainError
from deelrx_kit.grpc_errors import decode
from deelrx_kit.nats_bus import AUDIT_SUBJECT_PREFIX
from deelrx_kit.settings import Settings

T = TypeVar("T")

SECRET_KEY = "test-secret-0123456789abcdef-0123456789"
PUBLIC_URL = "https://auth.example.test"


def make_settings(
    tmp_path: Path, database_url: str = "", nats_url: str = "", redis_url: str = "", **overrides: Any
) -> Settings:
    """A service's settings for one test: its own data directory, cheap Argon2, no metrics port."""
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "argon2_time_cost": 1,
        "argon2_memory_cost_kib": 1024,
        "argon2_parallelism": 1,
        "metrics_enabled": False,
        "secret_key": SECRET_KEY,
        "public_url": PUBLIC_URL,
    }
    for name, value in (("database_url", database_url), ("nats_url", nats_url), ("redis_url", redis_url)):
        if value:
            values[name] = value
    values.update(overrides)
    return Settings(**values)


async def call(method: Callable[[Any], Awaitable[Any]], request: Any) -> Any:
    """Call an RPC; a failure comes back as the DomainError it carried."""
    try:
        return await method(request)
    except grpc.aio.AioRpcError as exc:
        raise decode(exc) from None


async def domain_error(call: Awaitable[Any]) -> DomainError:
    """The DomainError a call failed with; the test fails if the call succeeded."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return decode(exc)
    raise AssertionError("the call succeeded")


async def error_code(call: Awaitable[Any]) -> str:
    return (await domain_error(call)).code


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    done: Callable[[T], bool] = bool,
    timeout: float = 15.0,
    what: str = "",
) -> T:
    """Poll `probe` (sync or async) until `done(value)`, and return that value; fail the test
    with `what` (or the last value) when it never happens. For effects that land asynchronously
    (consumers, relays, breakers); the short interval keeps a passing test fast."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if done(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what or value!r}")
        await asyncio.sleep(0.02)


class AuditTap:
    """Audit events published from the moment of `start`, collected from a plain subscription to
    `audit.events.>` (JetStream publishes reach it too): a wait looks at this test's events only."""

    def __init__(self) -> None:
        self.events: list[audit_pb2.AuditEvent] = []
        self._changed = asyncio.Event()
        self._sub: Subscription | None = None

    @classmethod
    async def start(cls, nc: NATS) -> AuditTap:
        tap = cls()

        async def on_msg(msg: Any) -> None:
            tap.events.append(audit_pb2.AuditEvent.FromString(msg.data))
            tap._changed.set()

        tap._sub = await nc.subscribe(f"{AUDIT_SUBJECT_PREFIX}>", cb=on_msg)
        await nc.flush()  # the server knows the subscription before the test acts
        return tap

    async def wait(
        self, match: Callable[[audit_pb2.AuditEvent], bool], count: int = 1, timeout: float = 10.0
    ) -> list[audit_pb2.AuditEvent]:
        """At least `count` events that `match`, in publication order."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [e for e in self.events if match(e)]
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(found)} of {count} audit events; saw {[e.type for e in self.events]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


def wait_until(
    probe: Callable[[], T],
    done: Callable[[T], bool] = bool,
    timeout: float = 20.0,
    what: str = "",
    interval: float = 0.5,
) -> T:
    """`eventually` for synchronous tests. They drive the product over HTTP, where polling counts
    toward the caller's rate limit (100 a minute without a team): twice a second by default."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what or value!r}")
        time.sleep(interval)
