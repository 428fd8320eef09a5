"""In-memory fakes of the detector's ports (services/detector/ports.py) and of the identity,
sessions and rbac stubs its responses call (Protocols in services/detector/responses.py), and
the messages the responses consumer reads.

The shared window store is the in-memory adapter (checked against the Redis one by the same
contract tests) behind a yield before every call, so detector replicas running concurrently
interleave between adding an event and claiming the quiet period, as they do over Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from nats.aio.msg import Msg

from deelrx.audit.v1 import audit_pb2
from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import nats_bus
from deelrx_kit.clock import FrozenClock
from services.detector.adapters.memory_windows import MemoryWindowStore
from services.detector.adapters.nats_events import AlertResponsesFeed, security_alert
from services.detector.app import Detector
from services.detector.domain.rules import DEFAULT_RULES, Observation, RaisedAlert, RuleSet, RuleSpec
from services.detector.ports import Added, Claim
from services.detector.responses import Responses, parse_responses

T0 = datetime(2026, 5, 1, 9, 0, 3, tzinfo=UTC)


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


def alert_message(alert: audit_pb2.Alert | bytes) -> Msg:
    """A JetStream message on `security.alerts` carrying `alert` (or raw bytes), as the
    responses consumer receives it (no client: the handler only reads it)."""
    data = alert if isinstance(alert, bytes) else alert.SerializeToString()
    return Msg(_client=None, subject=nats_bus.ALERTS_SUBJECT, data=data)


class SharedWindows:
    """One window store for every replica of a test; counts its calls."""

    def __init__(self) -> None:
        self._inner = MemoryWindowStore()
        self.adds = 0
        self.claims = 0

    async def add(self, key: str, obs: Observation, window_seconds: int) -> Added:
        await asyncio.sleep(0)  # another replica may run here
        self.adds += 1
        return await self._inner.add(key, obs, window_seconds)

    async def claim(self, key: str, alert_id: str, event_id: str, at: datetime, quiet_until: datetime) -> Claim:
        await asyncio.sleep(0)
        self.claims += 1
        return await self._inner.claim(key, alert_id, event_id, at, quiet_until)


class FakeAlertSink:
    """What reaches the stream: alerts published and audit events recorded (the detector's own)."""

    def __init__(self) -> None:
        self.alerts: list[RaisedAlert] = []
        self.events: list[audit_pb2.AuditEvent] = []

    async def publish(self, alert: RaisedAlert) -> None:
        self.alerts.append(alert)

    async def record(self, event: audit_pb2.AuditEvent) -> None:
        self.events.append(event)

    def rules(self) -> list[str]:
        return [a.rule for a in self.alerts]


@dataclass
class FakeIdentity:
    """identity's LockAccount, RequireMfa and NotifyTeamOwners; `missing` users answer NOT_FOUND."""

    missing: set[str] = field(default_factory=set)
    fail_with: grpc.StatusCode | None = None
    locks: list[identity_pb2.LockAccountRequest] = field(default_factory=list)
    mfa: list[identity_pb2.RequireMfaRequest] = field(default_factory=list)
    notices: list[identity_pb2.NotifyTeamOwnersRequest] = field(default_factory=list)

    def _check(self, user_id: str = "") -> None:
        if self.fail_with is not None:
            raise rpc_error(self.fail_with)
        if user_id in self.missing:
            raise rpc_error(grpc.StatusCode.NOT_FOUND)

    async def LockAccount(self, request: identity_pb2.LockAccountRequest, timeout: float) -> Any:
        self._check(request.user_id)
        self.locks.append(request)

    async def RequireMfa(self, request: identity_pb2.RequireMfaRequest, timeout: float) -> Any:
        self._check(request.user_id)
        self.mfa.append(request)

    async def NotifyTeamOwners(self, request: identity_pb2.NotifyTeamOwnersRequest, timeout: float) -> Any:
        self._check()
        self.notices.append(request)


@dataclass
class FakeSessions:
    revoked: list[sessions_pb2.RevokeSessionRequest] = field(default_factory=list)

    async def RevokeSession(self, request: sessions_pb2.RevokeSessionRequest, timeout: float) -> Any:
        self.revoked.append(request)


@dataclass
class FakeRbac:
    """Team members by team id: {team: {user: role}}."""

    teams: dict[str, dict[str, str]] = field(default_factory=dict)

    async def ListMembers(self, request: rbac_pb2.ListMembersRequest, timeout: float) -> Any:
        members = self.teams.get(request.team_id)
        if members is None:
            raise rpc_error(grpc.StatusCode.NOT_FOUND)
        return rbac_pb2.ListMembersResponse(
            members=[rbac_pb2.Membership(team_id=request.team_id, user_id=u, role=r) for u, r in members.items()]
        )

    async def ListMemberships(self, request: rbac_pb2.ListMembershipsRequest, timeout: float) -> Any:
        teams = [t for t, members in self.teams.items() if request.user_id in members]
        return rbac_pb2.ListMembershipsResponse(
            memberships=[rbac_pb2.Membership(team_id=t, user_id=request.user_id) for t in teams]
        )


@dataclass
class DetectorWorld:
    """A detector replica (or several, over one window store) with its responses wired to fakes."""

    responses_config: str = ""
    specs: tuple[RuleSpec, ...] = DEFAULT_RULES
    clock: FrozenClock = field(default_factory=lambda: FrozenClock(T0))
    windows: SharedWindows = field(default_factory=SharedWindows)
    sink: FakeAlertSink = field(default_factory=FakeAlertSink)
    identity: FakeIdentity = field(default_factory=FakeIdentity)
    sessions: FakeSessions = field(default_factory=FakeSessions)
    rbac: FakeRbac = field(default_factory=FakeRbac)

    def __post_init__(self) -> None:
        self.responses = Responses(
            parse_responses(self.responses_config),
            self.sessions,
            self.sink.record,
            self.clock,
            identity=self.identity,
            rbac=self.rbac,
        )
        self.detector = self.replica()

        self.feed = AlertResponsesFeed(self.responses)

    def replica(self) -> Detector:
        return Detector(RuleSet(self.specs), self.windows, self.sink)

    async def observe(self, observations: Iterable[Observation]) -> list[RaisedAlert]:
        before = len(self.sink.alerts)
        for o in observations:
            await self.detector.observe(o)
        return self.sink.alerts[before:]

    async def deliver(self, alerts: Iterable[RaisedAlert]) -> None:
        """The alerts as the responses consumer reads them back from `security.alerts`."""
        for a in alerts:
            await self.feed.on_alert(alert_message(security_alert(a)))

    def responses_taken(self) -> list[tuple[str, str, str]]:
        """(action, target type, target id) of each `security.response_taken` recorded."""
        return [
            (e.details["action"], e.target.type, e.target.id)
            for e in self.sink.events
            if e.type == "security.response_taken"
        ]
