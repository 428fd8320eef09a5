"""`ratelimit.exceeded` audit events, once per subject and refusal episode.

The limiter reports the first refusal of an episode (Redis marks it in the subject's hash,
so one replica reports it, not each of them); this module publishes it to JetStream as an
audit event. A refused request never waits for the audit trail: the event goes out in the
background, and waits in a bounded backlog while JetStream is unreachable
(gateway/audit_backlog.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from nats.aio.client import Client as NATS

from deelrx_kit import audit_events
from gateway.audit_backlog import BackloggedPublisher
from gateway.ratelimit import Decision

SOURCE = "gateway"
# Policies whose subject is an account holder; per-IP and per-address refusals are not audited
# per subject (they would record addresses of people who never signed in).
AUDITED_POLICIES = ("team-", "user-")


class ExceededReporter:
    def __init__(self, nats: Callable[[], NATS | None] = lambda: None) -> None:
        self.publisher = BackloggedPublisher(nats)

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
        self.publisher.publish(event)
