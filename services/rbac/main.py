"""Wiring of the rbac process."""

from __future__ import annotations

from pathlib import Path

import structlog

from deelrx.rbac.v1 import rbac_pb2_grpc
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.outbox import Outbox
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.rbac.adapters import sql
from services.rbac.adapters.nats_events import ChangeListener
from services.rbac.app import Rbac
from services.rbac.grpc_api import RbacServicer

NAME = "rbac"
log = structlog.get_logger(__name__)


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    clock = clock or SystemClock()
    rt = ServiceRuntime(NAME, settings, grpc_port=grpc_port)
    sessionmaker = rt.use_database(Path(__file__).parent / "migrations")
    outbox = Outbox(sql.outbox, clock)
    rt.use_outbox(outbox)
    rbac = Rbac(sessionmaker, sql.RbacStore(), outbox, clock)
    # Loaded at start, then kept current by change events; after a reconnection, by comparing
    # the stored revisions (messages sent meanwhile were missed).
    listener = ChangeListener(rbac.cache, lambda: rbac.resync(preload=True))

    async def attach(nc: object) -> None:
        rbac.nc = nc

    rt.on_nats(attach)
    rt.on_nats(listener.subscribe)
    rt.on_nats_reconnected(rbac.resync)
    rt.on_stop(listener.close)

    async def preload(stop: object) -> None:
        # At start, whether or not NATS is up yet (the first connection resynchronises again).
        try:
            await rbac.resync(preload=True)
        except Exception as exc:  # noqa: BLE001 - teams then load on first use
            log.warning("rbac_preload_failed", error=str(exc))

    rt.add_task(preload)
    rt.grpc.add(rbac_pb2_grpc.add_RbacServiceServicer_to_server, RbacServicer(rbac), "deelrx.rbac.v1.RbacService")
    # Tests reach the use cases, the cache and the listener through the runtime.
    rt.rbac = rbac  # type: ignore[attr-defined]
    rt.rbac_changes = listener  # type: ignore[attr-defined]
    return rt


def main() -> None:
    run(bootstrap, NAME)
