from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.clock import FrozenClock
from deelrx_kit.grpc_server import channel
from deelrx_kit.runtime import ServiceRuntime
from deelrx_kit.settings import Settings
from services.sessions.main import bootstrap
from tests.integration.harness import make_settings

__all__ = ["make_settings"]

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)


@dataclass
class Harness:
    rt: ServiceRuntime
    stub: sessions_pb2_grpc.SessionsServiceStub
    clock: FrozenClock
    settings: Settings

    async def create(
        self,
        user_id: str = "usr_alice",
        team_id: str = "tm_a",
        *,
        ua: str = FIREFOX_LINUX,
        ip: str = "203.0.113.7",
        amr: tuple[str, ...] = ("pwd",),
        scope: str = "",
        idle: int = 0,
        absolute: int = 0,
    ) -> sessions_pb2.CreateSessionResponse:
        return await self.stub.CreateSession(
            sessions_pb2.CreateSessionRequest(
                context=common_pb2.RequestContext(request_id="req_1", client_ip=ip, user_agent=ua),
                user_id=user_id,
                team_id=team_id,
                amr=list(amr),
                scope=scope,
                policy=sessions_pb2.SessionPolicy(idle_timeout_minutes=idle, absolute_timeout_hours=absolute),
            )
        )

    async def refresh(self, token: str, ip: str = "203.0.113.8") -> sessions_pb2.RefreshResponse:
        return await self.stub.Refresh(
            sessions_pb2.RefreshRequest(context=common_pb2.RequestContext(client_ip=ip), refresh_token=token)
        )

    async def jwks(self) -> str:
        return (await self.stub.GetJwks(sessions_pb2.GetJwksRequest())).jwks_json


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def service(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str, clock: FrozenClock
) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, database_url, nats_url, redis_url)
    rt = bootstrap(settings, grpc_port=0, clock=clock)
    await rt.start()
    chan = channel(f"127.0.0.1:{rt.grpc.port}")
    try:
        yield Harness(rt, sessions_pb2_grpc.SessionsServiceStub(chan), clock, settings)
    finally:
        await chan.close()
        await rt.stop()
