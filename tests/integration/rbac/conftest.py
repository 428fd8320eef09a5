"""A real rbac gRPC server (SQLite and PostgreSQL, real NATS) and helpers to drive it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deelrx.common.v1 import common_pb2
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deelrx_kit.runtime import ServiceRuntime
from deelrx_kit.settings import Settings
from services.rbac.main import bootstrap
from tests.integration.harness import eventually, make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str, nats_url: str, redis_url: str) -> Settings:
    return make_settings(tmp_path, database_url, nats_url, redis_url)


class Running:
    """A started runtime with a client stub."""

    def __init__(self, rt: ServiceRuntime) -> None:
        self.rt = rt
        self.channel = channel(f"127.0.0.1:{rt.grpc.port}")
        self.stub = rbac_pb2_grpc.RbacServiceStub(self.channel)

    async def listening(self) -> None:
        """Until the replica follows `rbac.changed.>` and its outbox relay can publish."""
        await eventually(lambda: self.rt.rbac_changes.subscribed and self.rt.js() is not None)  # type: ignore[attr-defined]

    async def close(self) -> None:
        await self.channel.close()
        await self.rt.stop()


async def start(settings: Settings) -> Running:
    rt = bootstrap(settings, grpc_port=0)
    await rt.start()
    return Running(rt)


@pytest.fixture
async def rbac(settings: Settings) -> AsyncIterator[Running]:
    running = await start(settings)
    yield running
    await running.close()


def ctx(user_id: str = "") -> common_pb2.RequestContext:
    return common_pb2.RequestContext(request_id=new_id("req"), user_id=user_id, client_ip="127.0.0.1")


async def new_team(stub: rbac_pb2_grpc.RbacServiceStub, **members: str) -> tuple[str, dict[str, str]]:
    """A team whose first member (owner) is `owner`, then the others with their roles.

    Returns the team id and the user ids by name."""
    team_id = new_id("tm")
    users = {name: new_id("usr") for name in members}
    for name, role in members.items():
        await stub.AddMember(
            rbac_pb2.AddMemberRequest(
                context=ctx(users[name]), team_id=team_id, user_id=users[name], role=role, operation_id=new_id("inv")
            )
        )
    return team_id, users
