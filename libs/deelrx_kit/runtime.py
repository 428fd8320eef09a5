"""What every service process shares at run time: logging, metrics, database, NATS,
the outbox relay and the gRPC server, started and stopped in the right order.

A service's `main.bootstrap()` builds one `ServiceRuntime`, wires its own adapters and
servicer onto it, and hands it to `run()`.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog
from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from deelrx_kit import db, nats_bus
from deelrx_kit.grpc_server import GrpcService, run_until_signalled
from deelrx_kit.logging import configure_logging
from deelrx_kit.metrics import serve_metrics
from deelrx_kit.nats_link import NatsLink
from deelrx_kit.outbox import Outbox
from deelrx_kit.production import UnsafeProductionSettings, refuse_unsafe_production
from deelrx_kit.secret_file import warn_if_development_exposed
from deelrx_kit.settings import Settings

log = structlog.get_logger("deelrx.runtime")

Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class ServiceRuntime:
    def __init__(self, name: str, settings: Settings, *, grpc_port: int | None = None) -> None:
        self.name = name
        self.settings = settings
        port = settings.grpc_port(name) if grpc_port is None else grpc_port
        self.grpc = GrpcService(
            name,
            settings.grpc_host,
            port,
            tls=settings.grpc_tls_files(),
            reflection=settings.grpc_reflection if settings.grpc_reflection is not None else not settings.is_production,
            health_port=settings.grpc_health_port,
            max_connection_age_seconds=settings.grpc_max_connection_age_seconds,
            max_connection_age_grace_seconds=settings.grpc_max_connection_age_grace_seconds,
        )
        self.nats = NatsLink(settings, name)
        self.js = self.nats.js
        self.engine: AsyncEngine | None = None
        self.sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self.outbox: Outbox | None = None
        self.stop_event = asyncio.Event()
        self._tasks: list[Task] = []
        self._running: list[asyncio.Task[None]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    @property
    def nc(self) -> NATS | None:
        return self.nats.nc

    # -- wiring -------------------------------------------------------------------------
    def use_database(self, migrations_dir: Path) -> async_sessionmaker[AsyncSession]:
        url = self.settings.service_database_url(self.name)
        self._db_url, self._migrations = url, migrations_dir
        self.engine = db.create_engine(url, self.name)
        self.sessionmaker = db.session_factory(self.engine)
        return self.sessionmaker

    def use_outbox(self, outbox: Outbox) -> None:
        assert self.sessionmaker is not None, "use_database first"
        self.outbox = outbox
        sessionmaker = self.sessionmaker
        self.add_task(lambda stop: outbox.relay(sessionmaker, self.js, stop))

    def add_task(self, task: Task) -> None:
        """A background loop that runs until the stop event is set."""
        self._tasks.append(task)

    def add_consumer(
        self,
        *,
        stream: str,
        subject: nats_bus.Filter,
        durable: str,
        handler: nats_bus.Handler,
        batch_handler: nats_bus.BatchHandler | None = None,
        batch: int = 100,
        from_now: bool = False,
    ) -> None:
        """A durable JetStream consumer, started once NATS is reachable, stopped with the process
        (`from_now`: when first created, it starts at the stream's end; see consumer_config)."""
        durable = self.settings.nats_consumer_prefix + durable

        async def consume(stop: asyncio.Event) -> None:
            while self.js.js is None:  # services start before NATS is reachable
                if stop.is_set():
                    return
                await asyncio.sleep(0.1)
            await nats_bus.consume(
                self.js.js,
                stream=stream,
                subject=subject,
                durable=durable,
                handler=handler,
                stop=stop,
                max_deliver=self.settings.nats_max_deliver,
                batch_handler=batch_handler,
                batch=batch,
                from_now=from_now,
            )

        self.add_task(consume)

    def on_nats(self, hook: Callable[[NATS], Awaitable[None]]) -> None:
        """Called after every (re)connection to NATS, e.g. to subscribe."""
        self.nats.on_connected(hook)

    def on_nats_reconnected(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Called after the client reconnected by itself (subscriptions are restored, but
        plain messages sent meanwhile were missed)."""
        self.nats.on_reconnected(hook)

    def subscribe(self, subject: str, handler: nats_bus.Handler) -> None:
        """A plain subscription on the process's NATS connection (see NatsLink.subscribe)."""
        self.nats.subscribe(subject, handler)

    def on_stop(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(hook)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self.engine is not None and self.settings.migrate_on_start:
            await db.migrate(self._migrations, self._db_url, self.name)
        if self.settings.metrics_enabled:
            try:
                serve_metrics(self.settings.admin_host, self.settings.metrics_port(self.name))
            except OSError as exc:
                log.warning("metrics_port_unavailable", error=str(exc))
        self._running.append(asyncio.create_task(self.nats.run(self.stop_event)))
        for task in self._tasks:
            self._running.append(asyncio.create_task(task(self.stop_event)))
        await self.grpc.start()

    async def stop(self) -> None:
        self.stop_event.set()
        await self.grpc.stop()
        for hook in self._on_stop:
            await hook()
        # Loops watch the stop event and finish their current unit of work; only a loop
        # that does not finish in time is cancelled (mid-transaction, which rolls back).
        _, pending = await asyncio.wait(self._running, timeout=5) if self._running else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self.nats.close()
        if self.engine is not None:
            await self.engine.dispose()
        log.info("stopped")


def run(build: Callable[[Settings], ServiceRuntime], service: str) -> None:
    """Entry point of `python -m services.<name>`."""
    settings = Settings()
    configure_logging(service, settings.log_level, log_pii=settings.log_pii)
    warn_if_development_exposed(settings.env, grpc_host=settings.grpc_host, admin_host=settings.admin_host)
    try:
        refuse_unsafe_production(settings, service)
    except UnsafeProductionSettings as exc:
        raise SystemExit(str(exc)) from None

    async def main() -> None:
        runtime = build(settings)

        async def start() -> None:
            await runtime.start()
            # Everything built so far (modules, tables, compiled protobufs) lives as long as the
            # process: freezing it keeps the collector from walking it again after each burst of
            # request garbage, which otherwise costs more CPU than serving the requests.
            gc.collect()
            gc.freeze()

        await run_until_signalled(start, runtime.stop)

    asyncio.run(main())
