"""`authz.denied` audit events from the gateway, published to JetStream.

Best effort: the event is published in the background (deduplicated by its id); while NATS is
unreachable denials are counted in a metric and logged, not stored.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import Request
from nats.aio.client import Client as NATS
from prometheus_client import Counter

from deelrx_kit import audit_events
from gateway.context import request_context

log = structlog.get_logger("deelrx.gateway.denials")

DENIALS_UNPUBLISHED = Counter(
    "deelrx_gateway_authz_denied_unpublished_total", "authz.denied events that could not be published"
)


class DenialRecorder:
    def __init__(self) -> None:
        self._js: Any = None
        self._pending: set[asyncio.Task[None]] = set()

    def attach(self, nc: NATS) -> None:
        self._js = nc.jetstream()

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
        if self._js is None:
            DENIALS_UNPUBLISHED.inc()
            log.warning("authz_denied_unpublished", team_id=team_id, permission=permission)
            return
        task = asyncio.create_task(self._publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, event: Any) -> None:
        try:
            await self._js.publish(
                audit_events.subject_for(event),
                event.SerializeToString(),
                headers={"Nats-Msg-Id": event.id},
                timeout=3,
            )
        except Exception as exc:  # noqa: BLE001 - best effort, counted
            DENIALS_UNPUBLISHED.inc()
            log.warning("authz_denied_unpublished", error=str(exc))
