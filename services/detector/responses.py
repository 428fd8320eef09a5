"""Automatic responses to alerts, switchable per rule in configuration
(DEELRX_DETECTOR_RESPONSES, JSON: {"<rule id>": ["revoke_session"]}; none by default).

- `revoke_session`: for an alert about one session (`session_anomaly`), the session is
  revoked through the sessions service (reason `security:<rule>`), which ends it on every
  gateway at once and records `session.revoked`.

Each response taken is itself an audit event, `security.response_taken` (rule, alert id,
action, target), with an id derived from the alert and the action, so a replay or a second
detector records it once. A response runs where the alert was raised; a redelivered
trigger runs it again, which is harmless (revoking twice changes nothing).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import grpc
import structlog

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.audit_events import new_event
from deelrx_kit.clock import Clock
from deelrx_kit.ids import derived_id
from services.detector.domain.rules import RULE_IDS, RaisedAlert

log = structlog.get_logger(__name__)

ACTIONS = ("revoke_session",)


def parse_responses(text: str) -> dict[str, tuple[str, ...]]:
    if not text.strip():
        return {}
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("DEELRX_DETECTOR_RESPONSES must be a JSON object")
    out: dict[str, tuple[str, ...]] = {}
    for rule, actions in raw.items():
        if rule not in RULE_IDS:
            raise ValueError(f"unknown rule in DEELRX_DETECTOR_RESPONSES: {rule}")
        if not isinstance(actions, list) or any(a not in ACTIONS for a in actions):
            raise ValueError(f"{rule}: actions must be a list of {list(ACTIONS)}")
        out[rule] = tuple(actions)
    return out


class SessionsStub(Protocol):
    def RevokeSession(self, request: sessions_pb2.RevokeSessionRequest, timeout: float) -> Awaitable[Any]: ...


class Responses:
    def __init__(
        self,
        config: Mapping[str, Sequence[str]],
        sessions: SessionsStub,
        record: Callable[[audit_pb2.AuditEvent], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.record = record
        self.clock = clock

    async def respond(self, alert: RaisedAlert) -> list[str]:
        taken = []
        for action in self.config.get(alert.rule, ()):
            if action == "revoke_session" and alert.subject.startswith("session:"):
                session_id = alert.subject.removeprefix("session:")
                try:
                    await self.sessions.RevokeSession(
                        sessions_pb2.RevokeSessionRequest(
                            context=common_pb2.RequestContext(request_id=alert.id),
                            session_id=session_id,
                            reason=f"security:{alert.rule}",
                        ),
                        timeout=5,
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise  # the message is redelivered and the response tried again
                await self._record(alert, action, ("session", session_id))
                taken.append(action)
        return taken

    async def _record(self, alert: RaisedAlert, action: str, target: tuple[str, str]) -> None:
        event = new_event(
            "security.response_taken",
            source="detector",
            now=self.clock.now(),
            team_id=alert.team_id,
            target=target,
            details={"rule": alert.rule, "alert_id": alert.id, "action": action},
        )
        event.id = derived_id("evt", alert.time, "security.response_taken", alert.id, action)
        await self.record(event)
        log.info("security_response_taken", rule=alert.rule, alert_id=alert.id, action=action)
