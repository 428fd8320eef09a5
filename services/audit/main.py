"""Wiring of the audit service."""

from __future__ import annotations

import secrets
import socket
from datetime import timedelta
from pathlib import Path

from deelrx.audit.v1 import audit_pb2_grpc
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.nats_bus import ALERTS_SUBJECT
from deelrx_kit.outbox import Outbox
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.audit.adapters import triage_sql
from services.audit.adapters.nats_events import ALERTS_DURABLE, AuditFeed
from services.audit.adapters.nats_partitions import PartitionConsumers
from services.audit.app import AuditLog
from services.audit.checkpoints import ChainCheckpoints, CheckpointKey
from services.audit.grpc_api import AuditServicer
from services.audit.live import LiveHub
from services.audit.live_relay import LiveRelay
from services.audit.retention import Archiver
from services.audit.stream_partitions import MonthPartitions, StreamPartitions
from services.audit.triage import AuditActions


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    rt = ServiceRuntime("audit", settings, grpc_port=grpc_port)
    sessions = rt.use_database(Path(__file__).parent / "migrations")
    clock = clock or SystemClock()
    hub = LiveHub()
    relay = LiveRelay(hub)
    rt.on_nats(relay.on_connected)
    audit = AuditLog(sessions, clock, hub, announce=relay.announce)
    key = CheckpointKey(settings.secret())
    audit.checkpoint_key = key
    checkpoints = ChainCheckpoints(sessions, key, clock)
    interval = settings.audit_checkpoint_interval_seconds
    rt.add_task(lambda stop: checkpoints.run(stop, interval))
    if settings.audit_retention_days:
        directory = Path(settings.audit_archive_dir or settings.data_dir / "audit-archive")
        archiver = Archiver(sessions, key, clock, directory)
        age = timedelta(days=settings.audit_retention_days)
        rt.add_task(lambda stop: archiver.run(stop, age, max(interval, 60.0)))
    outbox = Outbox(triage_sql.outbox, clock)
    rt.use_outbox(outbox)
    feed = AuditFeed(audit, clock)
    # Events: one consumer per stream partition this replica holds a lease on.
    # Host name (the pod's, in Kubernetes) for operators reading the leases; the random part
    # tells a restarted process from the one it replaces.
    replica_id = f"{socket.gethostname()[:40]}-{secrets.token_hex(4)}"
    consumers = PartitionConsumers(audit, lambda: rt.js.js, owner=replica_id, max_deliver=settings.nats_max_deliver)
    partitions = StreamPartitions(
        sessions, clock, consumers, replica_id=replica_id, lease_seconds=settings.audit_partition_lease_seconds
    )
    rt.add_task(partitions.run)
    rt.add_task(MonthPartitions(sessions, clock).run)
    rt.add_consumer(stream="ALERTS", subject=ALERTS_SUBJECT, durable=ALERTS_DURABLE, handler=feed.on_alert)
    rt.grpc.add(
        audit_pb2_grpc.add_AuditServiceServicer_to_server,
        AuditServicer(audit, rt.stop_event, AuditActions(sessions, clock, outbox), checkpoints),
        "deelrx.audit.v1.AuditService",
    )
    return rt


def main() -> None:
    run(bootstrap, "audit")
