"""`ratelimit.exceeded` audit events, once per subject and refusal episode.

The limiter reports the first refusal of an episode (Redis marks it in the subject's hash,
so one replica reports it, not each of them); this module publishes it to JetStream as an
audit event. Fire and forget: a refused request never waits for the audit trail, and a
missed report is logged, not retried (the refusals themselves are counted in /metrics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from nats.aio.client import Client as NATS

from deelrx_kit import audit_events
from gateway.ratelimit import Decision

log = structlog.get_logger("deelrx.gateway.ratelimit")
SOURCE = "gateway"
# Policies whose subject is an account holder; per-IP and per-address refusals are not audited
# per subject (they would record addresses of people who never signed in).
AUDITED_POLICIES = ("team-", "user-")


class ExceededReporter:
    def __init__(self, nats: Callable[[], NATS | None] = lambda: None) -> None:
        self.nats = nats
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, policy: str, subject: str, decision: Decision) -> None:
        if not policy.startswith(AUDITED_POLICIES):
            return
        event = audit_events.new_event(
            "ratelimit.exceeded",
            source=SOURCE,
            now=datetime.now(UTC),
            team_id=subject if policy.startswith("team-") else "",
            actor_user_id=subject if policy.startswith("user-") else "",
            outcome="denied",
            details={
                "policy": policy,
                "limit": decision.limit,
                "window_seconds": 60,
                "retry_after_seconds": decision.retry_after,
                "mode": decision.mode,
            },
        )
        task = asyncio.get_running_loop().create_task(self._publish(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, event) -> None:  # type: ignore[no-untyped-def]
        nc = self.nats()
        if nc is None or not nc.is_connected:
            log.warning("ratelimit_exceeded_not_audited", reason="nats_unavailable", event_type=event.type)
            return
        try:
            await nc.jetstream().publish(
                audit_events.subject_for(event),
                event.SerializeToString(),
                headers={"Nats-Msg-Id": event.id},
                timeout=2,
            )
        except Exception as exc:  # noqa: BLE001
            log.warning("ratelimit_exceeded_not_audited", error=str(exc))
