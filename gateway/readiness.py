"""What the gateway needs to serve: the services' gRPC health, Redis and NATS."""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.state import Gateway


async def _grpc_ok(gw: Gateway, name: str) -> bool:
    stub = health_pb2_grpc.HealthStub(gw.clients.channels[name])
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
    except Exception:  # noqa: BLE001
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def _redis_ok(gw: Gateway) -> bool:
    if gw.limiter.breaker.is_open:
        return False  # known down: the breaker's probe is already asking, no second wait here
    try:
        return bool(await asyncio.wait_for(gw.redis.ping(), timeout=1.0))
    except Exception:  # noqa: BLE001
        return False


async def cached_check(gw: Gateway) -> dict[str, bool]:
    """`check`, at most once a second: /readyz is public and must not fan out per request."""
    return dict(await gw.readiness.get(lambda: check(gw)))


async def check(gw: Gateway) -> dict[str, bool]:
    names = list(gw.clients.channels)
    results = await asyncio.gather(*(_grpc_ok(gw, n) for n in names), _redis_ok(gw))
    status = dict(zip([*names, "redis"], results, strict=True))
    status["nats"] = gw.nats_connected
    return status
