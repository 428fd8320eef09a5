"""Wiring of the audit service."""

from __future__ import annotations

from pathlib import Path

from deelrx.audit.v1 import audit_pb2_grpc
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.audit.adapters.nats_events import AuditFeed
from services.audit.app import AuditLog
from services.audit.grpc_api import AuditServicer
from services.audit.live import LiveHub


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    rt = ServiceRuntime("audit", settings, grpc_port=grpc_port)
    sessions = rt.use_database(Path(__file__).parent / "migrations")
    clock = clock or SystemClock()
    audit = AuditLog(sessions, clock, LiveHub())
    feed = AuditFeed(audit, clock)
    rt.on_nats(feed.on_connected)
    rt.add_task(feed.consume_events)
    rt.add_task(feed.consume_alerts)
    rt.grpc.add(
        audit_pb2_grpc.add_AuditServiceServicer_to_server,
        AuditServicer(audit, rt.stop_event),
        "deelrx.audit.v1.AuditService",
    )
    return rt


def main() -> None:
    run(bootstrap, "audit")
