"""`authz.denied` audit events from the gateway, published to JetStream through a bounded
backlog (gateway/audit_backlog.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request
from nats.aio.client import Client as NATS

from deelrx_kit import audit_events
from gateway.audit_backlog import BackloggedPublisher
from gateway.context import request_context


class DenialRecorder:
    def __init__(self) -> None:
        self.publisher = BackloggedPublisher()

    def attach(self, nc: NATS) -> None:
        self.publisher.nats = lambda: nc

    def record(
        self,
        request: Request,
        *,
        team_id: str,
        permission: str,
        reason: str,
        resource: str = "",
        member: bool = True,
    ) -> None:
        """A member denied a permission is recorded in the team's trail; a non-member probing
        a team (or a team that does not exist) in their own, naming the team as the target."""
        details = {"permission": permission, "reason": reason, "method": request.method}
        if resource:
            details["resource"] = resource
        event = audit_events.new_event(
            "authz.denied",
            source="gateway",
            now=datetime.now(UTC),
            context=request_context(request),
            team_id=team_id if member else "",
            target=("team", team_id),
            outcome="failure",
            details=details,
        )
        self.publisher.publish(event)

    @property
    def backlog(self) -> int:
        return self.publisher.backlog
