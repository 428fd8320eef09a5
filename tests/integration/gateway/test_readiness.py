"""Public /readyz fans out to the services at most once a second, however many ask."""

from __future__ import annotations

import asyncio

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deelrx_kit.settings import SERVICES
from deploy.local.infra import free_port
from gateway.main import bootstrap
from tests.integration.harness import make_settings


class CountingHealth(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self.checks = 0

    async def Check(self, request, context):
        self.checks += 1
        await asyncio.sleep(0.05)  # a real service takes a moment; callers pile up meanwhile
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def test_readyz_fans_out_at_most_once_per_second(redis_url: str, tmp_path) -> None:
    health = CountingHealth()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    settings = make_settings(
        tmp_path, redis_url=redis_url, **{f"{name}_addr": f"127.0.0.1:{port}" for name in SERVICES}
    )
    process = bootstrap(settings)
    try:
        transport = httpx.ASGITransport(app=process.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            answers = await asyncio.gather(*(client.get("/readyz") for _ in range(40)))
            answers.append(await client.get("/readyz"))
        assert {a.status_code for a in answers} == {503}  # NATS is not connected in this test
        assert all(a.json() == {"status": "unavailable"} for a in answers)
        # One round of health checks (one per service channel) for 41 requests.
        assert health.checks == len(process.gw.clients.channels)
    finally:
        await process.gw.clients.close()
        await process.gw.redis.aclose()
        await server.stop(None)
