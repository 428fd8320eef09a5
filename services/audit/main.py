"""Wiring of the audit service."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deelrx.audit.v1 import audit_pb2_grpc
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.nats_bus import ALERTS_SUBJECT, AUDIT_SUBJECT_PREFIX
from deelrx_kit.outbox import Outbox
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.audit.adapters import triage_sql
from services.audit.adapters.nats_events import ALERTS_DURABLE, EVENTS_DURABLE, AuditFeed
from services.audit.app import AuditLog
from services.audit.checkpoints import ChainCheckpoints, CheckpointKey
from services.audit.grpc_api import AuditServicer
from services.audit.live import LiveHub
from services.audit.live_relay import LiveRelay
from services.audit.retention import Archiver
from services.audit.triage import AuditActions

AUDIT_SUBJECTS = f"{AUDIT_SUBJECT_PREFIX}>"


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    rt = ServiceRuntime("audit", settings, grpc_port=grpc_port)
    sessionmaker = rt.use_database(Path(__file__).parent / "migrations")
    clock = clock or SystemClock()
    hub = LiveHub()
    relay = LiveRelay(hub)
    rt.on_nats(relay.on_connected)
    audit = AuditLog(sessionmaker, clock, hub, announce=relay.announce)
    key = CheckpointKey(settings.secret())
    audit.checkpoint_key = key
    checkpoints = ChainCheckpoints(sessionmaker, key, clock)
    interval = settings.audit_checkpoint_interval_seconds
    rt.add_task(lambda stop: checkpoints.run(stop, interval))
    if settings.audit_retention_days:
        directory = Path(settings.audit_archive_dir or settings.data_dir / "audit-archive")
        archiver = Archiver(sessionmaker, key, clock, directory)
        age = timedelta(days=settings.audit_retention_days)
        rt.add_task(lambda stop: archiver.run(stop, age, max(interval, 60.0)))
    outbox = Outbox(triage_sql.outbox, clock)
    rt.use_outbox(outbox)
    feed = AuditFeed(audit, clock)
    rt.add_consumer(
        stream="AUDIT",
        subject=AUDIT_SUBJECTS,
        durable=EVENTS_DURABLE,
        handler=feed.on_event,
        batch_handler=feed.on_events,
        batch=500,  # one transaction per fetched batch
    )
    rt.add_consumer(stream="ALERTS", subject=ALERTS_SUBJECT, durable=ALERTS_DURABLE, handler=feed.on_alert)
    rt.grpc.add(
        audit_pb2_grpc.add_AuditServiceServicer_to_server,
        AuditServicer(audit, rt.stop_event, AuditActions(sessionmaker, clock, outbox), checkpoints),
        "deelrx.audit.v1.AuditService",
    )
    return rt


def main() -> None:
    run(bootstrap, "audit")
