"""authz.denied events wait while JetStream cannot take them and go out with the next success."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from deelrx.audit.v1 import audit_pb2
from gateway.denials import DenialRecorder
from gateway.exchange import Exchange


class FlakyJetStream:
    def __init__(self) -> None:
        self.up = False
        self.published: list[audit_pb2.AuditEvent] = []

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str], timeout: float) -> None:
        if not self.up:
            raise ConnectionError("nats: no servers")
        event = audit_pb2.AuditEvent.FromString(payload)
        assert (
            subject.startswith("audit.events.p")
            and subject.endswith(".authz.denied")
            and headers["Nats-Msg-Id"] == event.id
        )
        self.published.append(event)


def _request() -> Any:
    scope = {"type": "http", "method": "PUT", "path": "/", "headers": [(b"user-agent", b"pytest")], "query_string": b""}
    Exchange("req_1", "203.0.113.9").install(scope)
    return Request(scope)


async def _settle(recorder: DenialRecorder) -> None:
    while recorder._pending:
        await asyncio.gather(*list(recorder._pending))


async def test_denials_survive_a_jetstream_outage() -> None:
    recorder = DenialRecorder()
    js = FlakyJetStream()
    recorder.attach(SimpleNamespace(jetstream=lambda: js))  # type: ignore[arg-type]
    for permission in ("billing.manage", "roles.manage"):
        recorder.record(_request(), team_id="tm_a", permission=permission, reason="role manager lacks it")
    await _settle(recorder)
    assert recorder.backlog == 2 and not js.published
    js.up = True
    recorder.record(_request(), team_id="tm_b", permission="members.read", reason="not a member", member=False)
    await _settle(recorder)
    assert recorder.backlog == 0
    assert sorted(e.details["permission"] for e in js.published) == ["billing.manage", "members.read", "roles.manage"]
    outsider = next(e for e in js.published if e.details["permission"] == "members.read")
    assert outsider.team_id == "" and outsider.target.id == "tm_b" and outsider.outcome == "failure"
