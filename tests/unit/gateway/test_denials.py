"""The gateway's own audit events (authz.denied, ratelimit.exceeded) wait while JetStream cannot
take them and go out with the next success."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from deelrx.audit.v1 import audit_pb2
from gateway.audit_backlog import UNPUBLISHED
from gateway.denials import DenialRecorder
from gateway.exchange import Exchange
from gateway.ratelimit import Decision
from gateway.ratelimit_audit import ExceededReporter


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
            and subject.endswith(f".{event.type}")
            and headers["Nats-Msg-Id"] == event.id
        )
        self.published.append(event)


def _request() -> Any:
    scope = {"type": "http", "method": "PUT", "path": "/", "headers": [(b"user-agent", b"pytest")], "query_string": b""}
    Exchange("req_1", "203.0.113.9").install(scope)
    return Request(scope)


async def _settle(recorder: DenialRecorder) -> None:
    await recorder.publisher.settle()


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


async def test_rate_limit_refusals_survive_a_jetstream_outage_within_the_bound() -> None:
    js = FlakyJetStream()
    reporter = ExceededReporter(lambda: SimpleNamespace(jetstream=lambda: js))  # type: ignore[arg-type,return-value]
    reporter.publisher.limit = 2
    dropped_before = UNPUBLISHED.labels("ratelimit.exceeded")._value.get()
    decision = Decision(allowed=False, policy="team-starter", limit=100, remaining=0, reset_seconds=30, retry_after=30)
    for team in ("tm_1", "tm_2", "tm_3"):
        reporter("team-starter", team, decision)
        await reporter.publisher.settle()
    # The oldest went over the bound: dropped and counted; the two others wait.
    assert reporter.publisher.backlog == 2 and not js.published
    assert UNPUBLISHED.labels("ratelimit.exceeded")._value.get() == dropped_before + 1
    js.up = True
    reporter("user-starter", "usr_1", decision)
    await reporter.publisher.settle()
    assert reporter.publisher.backlog == 0
    assert sorted(e.team_id or e.actor.user_id for e in js.published) == ["tm_2", "tm_3", "usr_1"]
    assert {e.type for e in js.published} == {"ratelimit.exceeded"}
