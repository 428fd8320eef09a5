"""A member removed from a team loses the sessions bound to that team, even when the caller that
removed them failed before revoking (a crash or a sessions outage between the two steps).

rbac writes `member.removed` to its outbox in the removal's transaction; this durable JetStream
consumer revokes the member's sessions bound to the team. Revoking is idempotent, so a
redelivery or the caller's own revocation changes nothing.
"""

from __future__ import annotations

import structlog
from nats.aio.msg import Msg

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx_kit import nats_bus
from deelrx_kit.audit_partitions import PREFIX, type_filter
from services.sessions.revocation import Revocation

log = structlog.get_logger(__name__)

# From every partition, and in the unpartitioned form an rbac of an older version still
# publishes during an upgrade (the two filters never overlap: five tokens, four).
SUBJECT = (type_filter("member.removed"), f"{PREFIX}member.removed")
DURABLE = "sessions-member-removed"


class MemberRemovals:
    def __init__(self, revocation: Revocation) -> None:
        self.revocation = revocation

    async def on_event(self, msg: Msg) -> None:
        event = nats_bus.decode(msg, audit_pb2.AuditEvent)
        if event is None:
            return
        if event.type != "member.removed" or not event.team_id or event.target.type != "user" or not event.target.id:
            return
        context = common_pb2.RequestContext(request_id=event.request_id)
        revoked = await self.revocation.revoke_many(context, event.target.id, event.team_id, "", "member_removed")
        if revoked:
            log.info("member_sessions_revoked", team_id=event.team_id, user_id=event.target.id, revoked=revoked)
