"""The gateway's NATS feed: every notice that changes what a replica keeps in memory, subscribed
through the kit's NatsLink (plain subscriptions, made again with each new connection).

- `sessions.revoked` (sessions' outbox): the revoked sessions (RevocationSet, /me session
  summaries); its heartbeats keep the revocation feed healthy.
- `teams.changed` (identity's outbox, on settings and plan changes): the team's plan and /me team.
- `rbac.changed.<team_id>` (rbac's outbox, and at once after the commit): the member's (or every
  member's) role and /me membership.
- `audit.events.*.mfa.enabled`, `.mfa.disabled`, `.user.email_verified` (identity's audit events,
  published from its outbox over JetStream): the user's /me profile.

Each replica also sees writes made through any replica at once, through the change revisions in
Redis (gateway/change_revisions.py); this feed carries changes made behind the gateway. After a
reconnect, what was sent meanwhile is unknown: every cache is dropped and the revocations are
loaded again. While the feed is down, the /me and role caches keep entries for seconds only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from deelrx.audit.v1 import audit_pb2
from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import audit_partitions, nats_bus
from deelrx_kit.nats_link import NatsLink
from gateway.state import Gateway

log = structlog.get_logger("deelrx.gateway.feed")

PROFILE_EVENT_TYPES = ("mfa.enabled", "mfa.disabled", "user.email_verified")


class ChangeFeed:
    def __init__(self, gw: Gateway, resync_revocations: Callable[[], Awaitable[None]]) -> None:
        self.gw = gw
        self._resync = resync_revocations

    def attach(self, link: NatsLink) -> None:
        link.subscribe(nats_bus.SESSIONS_REVOKED_SUBJECT, self.on_revoked)
        link.subscribe(nats_bus.TEAM_CHANGED_SUBJECT, self.on_team_changed)
        link.subscribe(f"{nats_bus.RBAC_CHANGED_PREFIX}>", self.on_rbac_changed)
        for event_type in PROFILE_EVENT_TYPES:
            # `audit.events.<partition>.<type>`: that type in every partition.
            link.subscribe(audit_partitions.type_filter(event_type), self.on_profile_event)
        link.on_connected(self.connected)
        link.on_disconnected(self.disconnected)
        link.on_reconnected(self.reconnected)

    # -- notices ----------------------------------------------------------------------------
    async def on_revoked(self, msg: Msg) -> None:
        await self.gw.revocations.on_message(msg.data)
        notice = nats_bus.decode(msg, sessions_pb2.SessionRevoked)
        if notice is None:
            self.gw.profiles.clear()
        elif notice.session_ids:
            self.gw.profiles.sessions_ended(list(notice.session_ids))

    async def on_team_changed(self, msg: Msg) -> None:
        self.gw.plans.on_team_changed(msg.data)
        notice = nats_bus.decode(msg, identity_pb2.TeamChanged)
        if notice is not None and notice.team_id:
            self.gw.profiles.team_changed(notice.team_id)
        else:
            self.gw.profiles.clear()

    async def on_rbac_changed(self, msg: Msg) -> None:
        if self.gw.roles is not None:
            self.gw.roles.on_message(msg.subject, msg.data)
        notice = nats_bus.decode(msg, rbac_pb2.AuthorizationChanged)
        if notice is None:
            self.gw.profiles.clear()
            return
        team_id = notice.team_id or msg.subject.removeprefix(nats_bus.RBAC_CHANGED_PREFIX)
        self.gw.profiles.membership_changed(team_id, notice.user_id)

    async def on_profile_event(self, msg: Msg) -> None:
        event = nats_bus.decode(msg, audit_pb2.AuditEvent)
        if event is None:
            self.gw.profiles.clear()
            return
        for user_id in {event.actor.user_id, event.target.id if event.target.type == "user" else ""} - {""}:
            self.gw.profiles.user_changed(user_id)

    # -- connection -------------------------------------------------------------------------
    async def connected(self, nc: NATS) -> None:
        gw = self.gw
        gw.profiles.clear()
        gw.profiles.feed_healthy = True
        if gw.roles is not None:
            gw.roles.invalidate()
            gw.roles.feed_healthy = True
        gw.denials.attach(nc)
        await self._resync()
        # Ready only once the revocations it may have missed are loaded (readiness reads this).
        gw.nats_connected = True

    async def disconnected(self) -> None:
        gw = self.gw
        gw.revocations.connected = False
        gw.nats_connected = False
        gw.profiles.feed_healthy = False  # notices are lost meanwhile: short-lived entries only
        if gw.roles is not None:
            gw.roles.feed_healthy = False

    async def reconnected(self) -> None:
        gw = self.gw
        gw.nats_connected = True
        gw.plans.invalidate()
        gw.profiles.clear()  # notices may have been missed
        gw.profiles.feed_healthy = True
        if gw.roles is not None:
            gw.roles.invalidate()  # changes may have been missed
            gw.roles.feed_healthy = True
        await self._resync()
