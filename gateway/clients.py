"""gRPC stubs of the services behind the gateway, with errors turned into DomainError."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter

from deelrx.audit.v1 import audit_pb2_grpc
from deelrx.identity.v1 import identity_pb2_grpc
from deelrx.rbac.v1 import rbac_pb2_grpc
from deelrx.sessions.v1 import sessions_pb2_grpc
from deelrx_kit import grpc_errors
from deelrx_kit.grpc_client import service_channel
from deelrx_kit.settings import Settings

T = TypeVar("T")

# Deadline for one internal call; login's argon2 verification is the slowest (~100 ms).
DEFAULT_TIMEOUT = 10.0

CALLS = Counter("deelrx_gateway_grpc_calls_total", "Unary gRPC calls the gateway made, by method", ["method"])


def _method_name(method: Any) -> str:
    """`Service/Method` of a stub's callable (grpc.aio keeps the path as bytes)."""
    path = getattr(method, "_method", b"")
    text = path.decode() if isinstance(path, bytes) else str(path)
    return text.rsplit(".", 1)[-1] or "unknown"


async def call(method: Callable[..., Awaitable[T]], request: Any, timeout: float = DEFAULT_TIMEOUT) -> T:  # noqa: ASYNC109 - a gRPC deadline, passed through
    """Invoke a unary RPC; failures arrive as DomainError with the public code."""
    CALLS.labels(_method_name(method)).inc()
    try:
        return await method(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise grpc_errors.decode(exc) from None


@dataclass
class ServiceClients:
    identity: identity_pb2_grpc.IdentityServiceStub
    sessions: sessions_pb2_grpc.SessionsServiceStub
    rbac: rbac_pb2_grpc.RbacServiceStub
    audit: audit_pb2_grpc.AuditServiceStub
    channels: dict[str, grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: Settings) -> ServiceClients:
        channels = {name: service_channel(settings, name) for name in ("identity", "sessions", "rbac", "audit")}
        return cls(
            identity=identity_pb2_grpc.IdentityServiceStub(channels["identity"]),
            sessions=sessions_pb2_grpc.SessionsServiceStub(channels["sessions"]),
            rbac=rbac_pb2_grpc.RbacServiceStub(channels["rbac"]),
            audit=audit_pb2_grpc.AuditServiceStub(channels["audit"]),
            channels=channels,
        )

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()
