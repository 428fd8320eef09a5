"""Wiring of the detector. Its windows live in Redis (services/detector/adapters/redis_windows.py),
so a restart or a second replica loses and double-counts nothing: replicas share the durable
consumer "detector" (each event goes to one of them) and the windows. On start it catches up
from where the durable consumer stopped. It has no database.

When some response is configured, a second durable consumer, "detector-responses", reads the
alerts back from the ALERTS stream and carries out the responses, apart from detection.
"""

from __future__ import annotations

import json
from datetime import timedelta

from redis.asyncio import Redis

from deelrx.detector.v1 import detector_pb2_grpc
from deelrx.identity.v1 import identity_pb2_grpc
from deelrx.rbac.v1 import rbac_pb2_grpc
from deelrx.sessions.v1 import sessions_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.grpc_client import service_channel
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.detector.adapters.nats_events import (
    DURABLE,
    RESPONSES_DURABLE,
    AlertResponsesFeed,
    AuditEventFeed,
    JetStreamAlertSink,
)
from services.detector.adapters.redis_windows import RedisWindowStore
from services.detector.app import Detector
from services.detector.domain.rules import DEFAULT_RULES, RuleSet, apply_overrides
from services.detector.grpc_api import DetectorServicer
from services.detector.responses import Responses, parse_responses


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    rt = ServiceRuntime("detector", settings, grpc_port=grpc_port)
    sink = JetStreamAlertSink(clock or SystemClock(), rt.stop_event)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    store = RedisWindowStore(redis, stop=rt.stop_event)
    specs = DEFAULT_RULES
    if settings.detector_rules.strip():
        specs = apply_overrides(DEFAULT_RULES, json.loads(settings.detector_rules))
    detector = Detector(RuleSet(specs), store, sink)
    rt.on_stop(redis.aclose)
    feed = AuditEventFeed(detector, sink)
    rt.on_nats(feed.on_connected)
    rt.add_consumer(stream="AUDIT", subject=f"{nats_bus.AUDIT_SUBJECT_PREFIX}>", durable=DURABLE, handler=feed.on_event)
    configured = parse_responses(settings.detector_responses)
    if any(configured.values()):
        # The services' own channels: mutual TLS (the detector's certificate) when configured.
        channels = [service_channel(settings, name) for name in ("sessions", "identity", "rbac")]
        responses = Responses(
            configured,
            sessions_pb2_grpc.SessionsServiceStub(channels[0]),
            sink.record,
            sink.clock,
            identity=identity_pb2_grpc.IdentityServiceStub(channels[1]),
            rbac=rbac_pb2_grpc.RbacServiceStub(channels[2]),
            lock_for=timedelta(minutes=settings.detector_lock_minutes),
        )
        for ch in channels:
            rt.on_stop(ch.close)
        # One alert per pull: an alert's responses may take seconds of gRPC calls, and alerts
        # fetched behind it would outwait the ack wait (10 s) and be delivered again meanwhile.
        rt.add_consumer(
            stream="ALERTS",
            subject=nats_bus.ALERTS_SUBJECT,
            durable=RESPONSES_DURABLE,
            handler=AlertResponsesFeed(responses).on_alert,
            batch=1,
            # Created at the stream's end: the first start of a release that brings this consumer
            # must not lock accounts or revoke sessions for a month of alerts already answered.
            from_now=True,
        )
    rt.grpc.add(
        detector_pb2_grpc.add_DetectorServiceServicer_to_server,
        DetectorServicer(detector),
        "deelrx.detector.v1.DetectorService",
    )
    return rt


def main() -> None:
    run(bootstrap, "detector")
