"""`authz.denied` audit events from the gateway, published to JetStream.

The event is published in the background (deduplicated by its id). While JetStream cannot take
it, events wait in a bounded in-memory backlog that is flushed by the next successful publish;
past the bound (or on a restart) they are lost, counted in a metric and logged.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    "deelrx_gateway_authz_denied_unpublished_total", "authz.denied events dropped unpublished"
)
BACKLOG_LIMIT = 10_000


class DenialRecorder:
    def __init__(self) -> None:
        self._js: Any = None
        self._pending: set[asyncio.Task[None]] = set()
        self._backlog: deque[Any] = deque()

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
            self._keep(event)
            return
        task = asyncio.create_task(self._publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _keep(self, event: Any) -> None:
        if len(self._backlog) >= BACKLOG_LIMIT:
            self._backlog.popleft()
            DENIALS_UNPUBLISHED.inc()
            log.warning("authz_denied_dropped", backlog=BACKLOG_LIMIT)
        self._backlog.append(event)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    async def _send(self, event: Any) -> None:
        await self._js.publish(
            audit_events.subject_for(event),
            event.SerializeToString(),
            headers={"Nats-Msg-Id": event.id},
            timeout=3,
        )

    async def _publish(self, event: Any) -> None:
        try:
            await self._send(event)
        except Exception as exc:  # noqa: BLE001 - kept for the next successful publish
            log.warning("authz_denied_deferred", error=str(exc))
            self._keep(event)
            return
        # JetStream answers again: send what waited (the ids make repeats harmless).
        while self._backlog:
            waiting = self._backlog.popleft()
            try:
                await self._send(waiting)
            except Exception:  # noqa: BLE001
                self._backlog.appendleft(waiting)
                return
