"""Wiring of the detector. It keeps only in-memory windows (lost on restart, by design: an
attack in progress is seen again from the next events) and has no database.

Run one replica: replicas sharing the durable "detector" would each see only part of the
events and count less. A standby replica is harmless: derived alert ids make JetStream drop
repeats.
"""

from __future__ import annotations

from deelrx.detector.v1 import detector_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.detector.adapters.nats_events import DURABLE, AuditEventFeed, JetStreamAlertSink
from services.detector.app import Detector
from services.detector.domain.rules import DEFAULT_RULES, RuleEngine
from services.detector.grpc_api import DetectorServicer


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    rt = ServiceRuntime("detector", settings, grpc_port=grpc_port)
    sink = JetStreamAlertSink(clock or SystemClock(), rt.stop_event)
    detector = Detector(RuleEngine(DEFAULT_RULES), sink)
    feed = AuditEventFeed(detector, sink)
    rt.on_nats(feed.on_connected)
    rt.add_consumer(stream="AUDIT", subject=f"{nats_bus.AUDIT_SUBJECT_PREFIX}>", durable=DURABLE, handler=feed.on_event)
    rt.grpc.add(
        detector_pb2_grpc.add_DetectorServiceServicer_to_server,
        DetectorServicer(detector),
        "deelrx.detector.v1.DetectorService",
    )
    return rt


def main() -> None:
    run(bootstrap, "detector")
