"""A process's link to NATS: connected in the background (retrying until NATS answers), the plain
subscriptions it declared made on every new connection, and hooks run after each connect,
disconnect and reconnect. Services get one from their `ServiceRuntime`; the gateway builds its
own (it serves HTTP, not gRPC, and owns no stream).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from deelrx_kit import nats_bus
from deelrx_kit.infra_tls import nats_tls_context
from deelrx_kit.outbox import JetStreamProvider
from deelrx_kit.settings import Settings

log = structlog.get_logger("deelrx.nats")

MessageHandler = Callable[[Msg], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class NatsLink:
    def __init__(self, settings: Settings, name: str, *, ensure_streams: bool = True) -> None:
        self.settings = settings
        self.name = name
        self._ensure_streams = ensure_streams
        self.js = JetStreamProvider()
        self.nc: NATS | None = None
        self._subscriptions: list[tuple[str, MessageHandler]] = []
        self._on_connected: list[Callable[[NATS], Awaitable[None]]] = []
        self._on_reconnected: list[Hook] = []
        self._on_disconnected: list[Hook] = []

    # -- wiring (before run) ----------------------------------------------------------------
    def subscribe(self, subject: str, handler: MessageHandler) -> None:
        """A plain (non-durable) subscription, made at connect and kept across reconnects by
        the client: for notices that only matter from now on (a durable consumer is
        `ServiceRuntime.add_consumer`)."""
        self._subscriptions.append((subject, handler))

    def on_connected(self, hook: Callable[[NATS], Awaitable[None]]) -> None:
        """Called after the connection is made and the subscriptions are in place."""
        self._on_connected.append(hook)

    def on_reconnected(self, hook: Hook) -> None:
        """Called after the client reconnected by itself (subscriptions are restored, but
        plain messages sent meanwhile were missed)."""
        self._on_reconnected.append(hook)

    def on_disconnected(self, hook: Hook) -> None:
        self._on_disconnected.append(hook)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    # -- lifecycle --------------------------------------------------------------------------
    async def _run_hooks(self, hooks: list[Hook], event: str) -> None:
        for hook in hooks:
            try:
                await hook()
            except Exception as exc:  # noqa: BLE001 - one hook failing must not stop the others
                log.warning("nats_hook_failed", event=event, error=str(exc))

    async def _reconnected(self) -> None:
        await self._run_hooks(self._on_reconnected, "reconnected")

    async def _disconnected(self) -> None:
        await self._run_hooks(self._on_disconnected, "disconnected")

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (processes start without NATS; retried every second), then return."""
        while not stop.is_set():
            try:
                self.nc = await nats_bus.connect(
                    self.settings.nats_url,
                    self.name,
                    tls=nats_tls_context(self.settings),
                    on_reconnected=self._reconnected,
                    on_disconnected=self._disconnected,
                )
                js = self.nc.jetstream()
                if self._ensure_streams:
                    await nats_bus.ensure_streams(
                        js,
                        replicas=self.settings.nats_stream_replicas,
                        audit_max_bytes=self.settings.nats_audit_max_bytes,
                    )
                self.js.js = js
                for subject, handler in self._subscriptions:
                    await self.nc.subscribe(subject, cb=handler)
                if self._subscriptions:
                    await self.nc.flush()
                for hook in self._on_connected:
                    await hook(self.nc)
                log.info("nats_connected")
                return
            except Exception as exc:  # noqa: BLE001
                log.warning("nats_connect_failed", error=str(exc))
                if self.nc is not None:
                    # A half-set-up client would otherwise keep reconnecting forever.
                    await self.nc.close()
                    self.nc = None
                self.js.js = None
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            # Publishes were acknowledged one by one (JetStream), so nothing is pending;
            # close rather than drain, which waits out pull subscriptions for 30 s.
            await self.nc.close()
