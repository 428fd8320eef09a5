"""A real rbac gRPC server (SQLite and PostgreSQL, real NATS) and helpers to drive it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx_kit.errors import DomainError
from deelrx_kit.grpc_errors import decode
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deelrx_kit.runtime import ServiceRuntime
from deelrx_kit.settings import Settings
from services.rbac.main import bootstrap


def make_settings(tmp_path: Path, database_url: str, nats_url: str, redis_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        nats_url=nats_url,
        redis_url=redis_url,
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        metrics_enabled=False,
        secret_key="test-secret-0123456789abcdef-0123456789",
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, nats_url: str, redis_url: str) -> Settings:
    return make_settings(tmp_path, database_url, nats_url, redis_url)


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Running:
    """A started runtime with a client stub."""

    def __init__(self, rt: ServiceRuntime) -> None:
        self.rt = rt
        self.channel = channel(f"127.0.0.1:{rt.grpc.port}")
        self.stub = rbac_pb2_grpc.RbacServiceStub(self.channel)

    async def listening(self) -> None:
        """Until the replica follows `rbac.changed.>` and its outbox relay can publish."""
        await wait_for(lambda: self.rt.rbac_changes.subscribed and self.rt.js() is not None)  # type: ignore[attr-defined]

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


async def call_error(coro) -> DomainError:  # type: ignore[no-untyped-def]
    """The DomainError a failing call carried (fails the test if the call succeeded)."""
    try:
        await coro
    except grpc.aio.AioRpcError as exc:
        return decode(exc)
    raise AssertionError("the call succeeded")


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


async def audit_events_of(nats_client, team_id: str, want: int, timeout: float = 10.0) -> list[audit_pb2.AuditEvent]:  # type: ignore[no-untyped-def]
    """At least `want` audit events of the team from JetStream (every event since the stream began is scanned)."""
    js = nats_client.jetstream()
    sub = await js.subscribe("audit.events.>", ordered_consumer=True)
    found: list[audit_pb2.AuditEvent] = []
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while len(found) < want and asyncio.get_running_loop().time() < deadline:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except Exception:  # nats TimeoutError: nothing new yet
                continue
            event = audit_pb2.AuditEvent.FromString(msg.data)
            if event.team_id == team_id:
                found.append(event)
    finally:
        await sub.unsubscribe()
    return found
