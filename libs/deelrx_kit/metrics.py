"""Prometheus metrics shared by every service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

GRPC_REQUESTS = Counter("deelrx_grpc_requests_total", "gRPC calls handled", ["service", "method", "code"])
GRPC_LATENCY = Histogram(
    "deelrx_grpc_request_seconds",
    "gRPC call latency",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
EVENTS_PUBLISHED = Counter("deelrx_events_published_total", "Events published to NATS", ["subject_root"])
OUTBOX_FAILURES = Counter("deelrx_outbox_publish_failures_total", "Outbox publish attempts that failed")
ALERTS_RAISED = Counter("deelrx_alerts_raised_total", "Alerts the detector raised", ["rule", "severity"])
DEAD_LETTERS = Counter(
    "deelrx_dead_letters_total", "Messages moved to the dead-letter stream after failing for good", ["durable"]
)


def serve_metrics(host: str, port: int) -> None:
    """Expose /metrics on a loopback port in a daemon thread (0 = disabled)."""
    if port:
        start_http_server(port, addr=host)
