"""Client channels to the suite's services: balanced across replicas, with deadlines, retries for
idempotent reads only, and mutual TLS when the settings name certificate files.

- `dns:///host:port` resolves every address behind a headless Service, and `round_robin` sends
  calls to all of them (pick-first would pin one replica); servers cap connection age so clients
  re-resolve and find new pods.
- Every call has a deadline (the service config's timeout caps any longer one): 10 s, and an
  hour for server-streaming calls (an export of a million events streams for minutes; the
  live stream's client resumes from its last event after the hour).
- Only reads (`Get*`, `List*`, `Lookup*`, `Query*` and the named checks) are retried, and only on
  UNAVAILABLE; a write is never sent twice by the channel.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, cast

import grpc

from deelrx_kit.mtls import ReloadingChannel
from deelrx_kit.settings import Settings

# service name -> its one gRPC service's full name
FULL_SERVICE_NAMES = {
    "identity": "deelrx.identity.v1.IdentityService",
    "sessions": "deelrx.sessions.v1.SessionsService",
    "rbac": "deelrx.rbac.v1.RbacService",
    "audit": "deelrx.audit.v1.AuditService",
    "detector": "deelrx.detector.v1.DetectorService",
}
READ_PREFIXES = ("Get", "List", "Lookup", "Query")
READ_METHODS = frozenset({"Check", "BatchCheck", "CanGrantRole", "VerifyChain"})
DEFAULT_DEADLINE_SECONDS = 10.0
STREAM_DEADLINE_SECONDS = 3600.0

RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def is_idempotent_read(method: str) -> bool:
    return method in READ_METHODS or method.startswith(READ_PREFIXES)


def service_methods(full_service_name: str) -> list[str]:
    """The RPC names of a service, from its generated descriptor."""
    package, _, _ = full_service_name.rpartition(".")
    module = importlib.import_module(f"{package}.{package.split('.')[1]}_pb2")
    return [m.name for m in module.DESCRIPTOR.services_by_name[full_service_name.rpartition(".")[2]].methods]


def streaming_methods(full_service_name: str) -> list[str]:
    """The server-streaming RPC names of a service, from its generated descriptor."""
    package, _, _ = full_service_name.rpartition(".")
    module = importlib.import_module(f"{package}.{package.split('.')[1]}_pb2")
    service = module.DESCRIPTOR.services_by_name[full_service_name.rpartition(".")[2]]
    return [m.name for m in service.methods if m.server_streaming]


def service_config(full_service_name: str, deadline: float = DEFAULT_DEADLINE_SECONDS) -> dict[str, Any]:
    streams = streaming_methods(full_service_name)
    reads = [{"service": full_service_name, "method": m} for m in service_methods(full_service_name)]
    reads = [r for r in reads if is_idempotent_read(r["method"]) and r["method"] not in streams]
    reads.append({"service": "grpc.health.v1.Health", "method": "Check"})
    timeout = f"{deadline:g}s"
    method_config: list[dict[str, Any]] = [
        {"name": [{}], "timeout": timeout},
        {"name": reads, "timeout": timeout, "retryPolicy": RETRY_POLICY},
    ]
    if streams:
        names = [{"service": full_service_name, "method": m} for m in streams]
        method_config.append({"name": names, "timeout": f"{STREAM_DEADLINE_SECONDS:g}s"})
    return {"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": method_config}


def target(address: str) -> str:
    """`host:port` becomes `dns:///host:port`; an explicit scheme is kept."""
    if "://" in address or address.startswith(("dns:", "unix:", "ipv4:", "ipv6:")):
        return address
    return f"dns:///{address}"


def service_channel(settings: Settings, service: str) -> grpc.aio.Channel:
    """The channel the gateway (or any caller) uses to reach `service`."""
    address = getattr(settings, f"{service}_addr")
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", json.dumps(service_config(FULL_SERVICE_NAMES[service]))),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
        # A restarted replica is reached again within seconds: gRPC's default reconnect backoff
        # grows to 120 s, and after a short outage callers kept answering 503 for half a minute.
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    files = settings.grpc_tls_files()
    if files is None:
        return grpc.aio.insecure_channel(target(address), options=options)
    # The server's certificate must name the service we meant to reach (a DNS SAN equal to the
    # service name), whatever address it was reached at.
    options.append(("grpc.ssl_target_name_override", service))

    def build(creds: grpc.ChannelCredentials) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(target(address), creds, options=options)

    return cast(grpc.aio.Channel, ReloadingChannel(build, files))
