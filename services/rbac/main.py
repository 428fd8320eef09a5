"""Wiring of the rbac process: adapters behind the ports, use cases, servicer."""

from __future__ import annotations

from pathlib import Path

import structlog

from deelrx.rbac.v1 import rbac_pb2_grpc
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.outbox import Outbox
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.rbac.adapters import sql
from services.rbac.adapters.nats_events import ChangeListener, CoreNatsAnnouncer
from services.rbac.assignments import Assignments
from services.rbac.changes import SOURCE, TeamChanges
from services.rbac.checks import Checks
from services.rbac.grpc_api import RbacServicer
from services.rbac.memberships import Memberships
from services.rbac.roles import Roles
from services.rbac.snapshots import Snapshots

NAME = "rbac"
log = structlog.get_logger(__name__)


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    clock = clock or SystemClock()
    rt = ServiceRuntime(NAME, settings, grpc_port=grpc_port)
    db = rt.use_database(Path(__file__).parent / "migrations")
    outbox = Outbox(sql.outbox, clock)
    rt.use_outbox(outbox)
    transactions = sql.SqlTransactions(db)
    store = sql.RbacStore()
    announcer = CoreNatsAnnouncer()
    snapshots = Snapshots(transactions, store)
    changes = TeamChanges(
        transactions=transactions,
        store=store,
        outbox=outbox,
        audit=AuditTrail(outbox, source=SOURCE, clock=clock),
        announcer=announcer,
        snapshots=snapshots,
        clock=clock,
    )
    servicer = RbacServicer(
        checks=Checks(snapshots),
        memberships=Memberships(
            transactions=transactions, store=store, snapshots=snapshots, changes=changes, clock=clock
        ),
        roles=Roles(store=store, snapshots=snapshots, changes=changes, clock=clock),
        assignments=Assignments(store=store, snapshots=snapshots, changes=changes, clock=clock),
    )
    # Loaded at start, then kept current by change events; after a reconnection, by comparing
    # the stored revisions (messages sent meanwhile were missed).
    listener = ChangeListener(snapshots.cache, lambda: snapshots.resync(preload=True))
    rt.on_nats(announcer.attach)
    rt.on_nats(listener.subscribe)
    rt.on_nats_reconnected(snapshots.resync)
    rt.on_stop(listener.close)

    async def preload(stop: object) -> None:
        # At start, whether or not NATS is up yet (the first connection resynchronises again).
        try:
            await snapshots.resync(preload=True)
        except Exception as exc:  # noqa: BLE001 - teams then load on first use
            log.warning("rbac_preload_failed", error=str(exc))

    rt.add_task(preload)
    rt.grpc.add(rbac_pb2_grpc.add_RbacServiceServicer_to_server, servicer, "deelrx.rbac.v1.RbacService")
    # Tests reach the team snapshots and the change listener through the runtime.
    rt.rbac = snapshots  # type: ignore[attr-defined]
    rt.rbac_changes = listener  # type: ignore[attr-defined]
    return rt


def main() -> None:
    run(bootstrap, NAME)
