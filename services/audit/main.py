"""Wiring of the audit service: the concrete adapters (SQL stores, JetStream consumers, the
live relay over NATS) handed to the use cases as their ports (services/audit/ports.py)."""

from __future__ import annotations

import secrets
import socket
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx.audit.v1 import audit_pb2_grpc
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.nats_bus import ALERTS_SUBJECT
from deelrx_kit.outbox import Outbox
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.audit.adapters import checkpoint_sql, partition_sql, retention_sql, sql, triage_sql
from services.audit.adapters.nats_events import ALERTS_DURABLE, AuditFeed
from services.audit.adapters.nats_legacy import LegacyDrain, WithLegacyDrain
from services.audit.adapters.nats_live import LiveRelay
from services.audit.adapters.nats_partitions import PartitionConsumers
from services.audit.app import AuditLog
from services.audit.archive_sink import ArchiveSink, sink_from_settings
from services.audit.checkpoints import ChainCheckpoints, CheckpointKey
from services.audit.grpc_api import AuditServicer
from services.audit.live_hub import LiveHub
from services.audit.ports import LiveAnnouncer
from services.audit.retention import Archiver
from services.audit.stream_partitions import MonthPartitions, StreamPartitions
from services.audit.triage import AuditActions


def audit_log(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    hub: LiveHub | None = None,
    announce: LiveAnnouncer | None = None,
) -> AuditLog:
    """The audit log over the SQL stores."""
    return AuditLog(
        sessionmaker,
        clock,
        hub or LiveHub(),
        events=sql,
        alerts=sql,
        checkpoints=checkpoint_sql,
        leases=partition_sql,
        announce=announce,
    )


def chain_checkpoints(
    sessionmaker: async_sessionmaker[AsyncSession], key: CheckpointKey, clock: Clock
) -> ChainCheckpoints:
    return ChainCheckpoints(sessionmaker, key, clock, events=sql, checkpoints=checkpoint_sql)


def chain_archiver(
    sessionmaker: async_sessionmaker[AsyncSession], key: CheckpointKey, clock: Clock, sink: ArchiveSink | Path
) -> Archiver:
    return Archiver(sessionmaker, key, clock, sink, events=sql, checkpoints=checkpoint_sql, retention=retention_sql)


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    rt = ServiceRuntime("audit", settings, grpc_port=grpc_port)
    sessionmaker = rt.use_database(Path(__file__).parent / "migrations")
    clock = clock or SystemClock()
    hub = LiveHub()
    relay = LiveRelay(hub)
    rt.on_nats(relay.on_connected)
    audit = audit_log(sessionmaker, clock, hub, announce=relay.announce)
    key = CheckpointKey(settings.secret())
    audit.checkpoint_key = key
    checkpoints = chain_checkpoints(sessionmaker, key, clock)
    interval = settings.audit_checkpoint_interval_seconds
    rt.add_task(lambda stop: checkpoints.run(stop, interval))
    if settings.audit_retention_days:
        archive = chain_archiver(sessionmaker, key, clock, sink_from_settings(settings))
        age = timedelta(days=settings.audit_retention_days)
        rt.add_task(lambda stop: archive.run(stop, age, max(interval, 60.0)))
    outbox = Outbox(triage_sql.outbox, clock)
    rt.use_outbox(outbox)
    # Events: one consumer per stream partition this replica holds a lease on. The host name
    # (the pod's, in Kubernetes) is for operators reading the leases; the random part tells a
    # restarted process from the one it replaces.
    replica_id = f"{socket.gethostname()[:40]}-{secrets.token_hex(4)}"
    consumers = PartitionConsumers(
        audit,
        lambda: rt.js.js,
        owner=replica_id,
        announce=relay.announce_events,
        max_deliver=settings.nats_max_deliver,
        consumer_prefix=settings.nats_consumer_prefix,
    )
    # Events an older version published on the unpartitioned subjects, stored by the holder of
    # partition 0 (services/audit/adapters/nats_legacy.py).
    drain = LegacyDrain(
        audit,
        lambda: rt.js.js,
        owner=replica_id,
        announce=relay.announce_events,
        max_deliver=settings.nats_max_deliver,
        consumer_prefix=settings.nats_consumer_prefix,
    )
    partitions = StreamPartitions(
        sessionmaker,
        clock,
        WithLegacyDrain(consumers, drain),
        leases=partition_sql,
        replica_id=replica_id,
        lease_seconds=settings.audit_partition_lease_seconds,
    )
    rt.add_task(partitions.run)
    rt.add_task(MonthPartitions(sessionmaker, clock, leases=partition_sql).run)
    feed = AuditFeed(audit, clock)
    rt.add_consumer(stream="ALERTS", subject=ALERTS_SUBJECT, durable=ALERTS_DURABLE, handler=feed.on_alert)
    actions = AuditActions(sessionmaker, clock, outbox, alerts=sql, triage=triage_sql)
    rt.grpc.add(
        audit_pb2_grpc.add_AuditServiceServicer_to_server,
        AuditServicer(audit, rt.stop_event, actions, checkpoints),
        "deelrx.audit.v1.AuditService",
    )
    return rt


def main() -> None:
    run(bootstrap, "audit")
