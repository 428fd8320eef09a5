"""A password reset or change ends the user's older sessions, even when the gateway's revocation
after identity's commit failed (a sessions outage between the two steps): a stolen session must
not outlive the victim's new password.

identity writes `password.reset` / `password.changed` to its outbox in the password's
transaction; this durable JetStream consumer revokes what the gateway's RevokeSessions call
would have: every session of the user for a reset, all but the changing session for a change.
Only sessions created by the event's time go (a login with the new password stays), and
revoking is idempotent, so a redelivery or the gateway's own revocation changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from nats.aio.msg import Msg

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx_kit import nats_bus
from deelrx_kit.audit_partitions import PREFIX, type_filter
from deelrx_kit.timestamps import to_datetime_or
from services.sessions.revocation import Revocation

log = structlog.get_logger(__name__)

# Event type -> the reason the gateway's revocation gives (the sessions' revoke_reason).
REASONS = {"password.reset": "password_reset", "password.changed": "password_changed"}
# From every partition, and in the unpartitioned form an identity of an older version still
# publishes during an upgrade (five tokens against four: the filters never overlap).
SUBJECT = tuple(f for kind in REASONS for f in (type_filter(kind), f"{PREFIX}{kind}"))
DURABLE = "sessions-password-changes"
_NO_TIME = datetime.min.replace(tzinfo=UTC)


class PasswordChanges:
    def __init__(self, revocation: Revocation) -> None:
        self.revocation = revocation

    async def on_event(self, msg: Msg) -> None:
        event = nats_bus.decode(msg, audit_pb2.AuditEvent)
        if event is None:
            return
        reason = REASONS.get(event.type)
        if reason is None or event.outcome != "success" or event.target.type != "user" or not event.target.id:
            return
        changed_at = to_datetime_or(event.time, _NO_TIME) if event.HasField("time") else _NO_TIME
        if changed_at is _NO_TIME:  # no bound: a login made with the new password must not die
            log.warning("password_event_without_time", event_id=event.id)
            return
        # A change keeps the session that made it, as the gateway's call does.
        keep = event.session_id if event.type == "password.changed" else ""
        context = common_pb2.RequestContext(
            request_id=event.request_id, client_ip=event.actor.ip, user_agent=event.actor.user_agent
        )
        revoked = await self.revocation.revoke_many(
            context, event.target.id, "", keep, reason, created_before=changed_at
        )
        if revoked:
            log.info("password_sessions_revoked", user_id=event.target.id, reason=reason, revoked=revoked)
