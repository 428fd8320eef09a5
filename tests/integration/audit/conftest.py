"""An audit service started in-process against real NATS and a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from nats.js import JetStreamContext

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.grpc_errors import decode
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deelrx_kit.settings import Settings
from deelrx_kit.timestamps import to_timestamp
from services.audit.main import bootstrap

T = TypeVar("T")


def settings_for(tmp_path: Path, database_url: str, nats_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        nats_url=nats_url,
        metrics_enabled=False,
        secret_key="test-secret-0123456789abcdef-0123456789",
    )


def event(
    type: str = "team.updated", *, team_id: str = "", user_id: str = "", when: datetime | None = None, **kw: Any
) -> audit_pb2.AuditEvent:
    return new_event(
        type,
        source="test",
        now=when or datetime.now(UTC),
        team_id=team_id,
        actor_user_id=user_id,
        **kw,
    )


async def publish(js: JetStreamContext, ev: audit_pb2.AuditEvent, msg_id: str | None = None) -> None:
    await js.publish(subject_for(ev), ev.SerializeToString(), headers={"Nats-Msg-Id": msg_id or ev.id})


async def publish_alert(js: JetStreamContext, alert: audit_pb2.Alert, msg_id: str | None = None) -> None:
    await js.publish(nats_bus.ALERTS_SUBJECT, alert.SerializeToString(), headers={"Nats-Msg-Id": msg_id or alert.id})


def alert(rule: str = "brute_force", **kw: Any) -> audit_pb2.Alert:
    a = audit_pb2.Alert(
        id=new_id("alr"), time=to_timestamp(datetime.now(UTC)), rule=rule, severity="high", status="open"
    )
    evidence = kw.pop("evidence", None)
    for k, v in kw.items():
        if isinstance(v, list):
            getattr(a, k).extend(v)
        else:
            setattr(a, k, v)
    if evidence:
        a.evidence.update(evidence)
    return a


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    """Poll until `done(value)`; the consumers are asynchronous."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if done(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


async def error_code(call: Awaitable[Any]) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return decode(exc).code
    raise AssertionError("call succeeded")


@dataclass
class AuditHarness:
    stub: audit_pb2_grpc.AuditServiceStub
    js: JetStreamContext
    database_url: str

    async def team_events(self, team_id: str, **kw: Any) -> list[audit_pb2.AuditEvent]:
        resp = await self.stub.QueryEvents(audit_pb2.QueryEventsRequest(team_id=team_id, **kw))
        return list(resp.events)

    async def wait_team_events(self, team_id: str, count: int) -> list[audit_pb2.AuditEvent]:
        return await eventually(lambda: self.team_events(team_id, page={"limit": 200}), lambda evs: len(evs) >= count)


@pytest.fixture
async def audit(tmp_path: Path, database_url: str, nats_url: str, nats_client) -> AsyncIterator[AuditHarness]:
    rt = bootstrap(settings_for(tmp_path, database_url, nats_url), grpc_port=0)
    await rt.start()
    js = nats_client.jetstream()
    await nats_bus.ensure_streams(js)
    ch = channel(f"127.0.0.1:{rt.grpc.port}")
    try:
        yield AuditHarness(audit_pb2_grpc.AuditServiceStub(ch), js, database_url)
    finally:
        await ch.close()
        await rt.stop()
