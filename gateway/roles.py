"""The caller's role in the active team, for forward auth's `X-Role` without a call per request.

Loaded from rbac (`GetMembership`) on a miss and kept in memory. rbac publishes
`rbac.changed.<team_id>` (through its outbox) on every membership or role change; the entry of
the named user (or the whole team) is dropped as the message arrives, and everything is dropped
when the NATS feed reconnects (messages may have been missed). Entries also expire after
`ttl` (`ttl_without_feed` while the feed is down), a safety net rather than the mechanism.
A write through any gateway replica moves the caller's or the team's change revision in Redis
(gateway/change_revisions.py), read with the request's rate limit: an entry loaded under other
revisions is loaded again, so `X-Role` follows a role change made through the gateway at once.
A load that started before an invalidation is not cached (per-team generation counter).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit import nats_bus

log = structlog.get_logger("deelrx.gateway.roles")

ROLE_TTL_SECONDS = 300.0
ROLE_TTL_WITHOUT_FEED_SECONDS = 5.0
MAX_ENTRIES = 100_000


class RoleCache:
    def __init__(
        self,
        load: Callable[[str, str], Awaitable[str | None]],
        *,
        ttl: float = ROLE_TTL_SECONDS,
        ttl_without_feed: float = ROLE_TTL_WITHOUT_FEED_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._load = load  # (user_id, team_id) -> role, or None when not a member
        self._ttl = ttl
        self._ttl_without_feed = ttl_without_feed
        # -> (role, loaded at, change revisions it was loaded under)
        self._entries: dict[tuple[str, str], tuple[str | None, float, tuple[str, ...] | None]] = {}
        self._generation: dict[str, int] = {}
        self._epoch = 0
        self.feed_healthy = False
        self.loads = 0

    async def role_of(self, user_id: str, team_id: str, revisions: tuple[str, ...] | None = None) -> str | None:
        """The role, or None when the user is not a member of the team. `revisions`: the
        caller's change revisions (gateway/change_revisions.py), when the request read them;
        an entry loaded under others is loaded again."""
        key = (user_id, team_id)
        hit = self._entries.get(key)
        ttl = self._ttl if self.feed_healthy else self._ttl_without_feed
        if hit is not None and self._monotonic() - hit[1] < ttl and (revisions is None or hit[2] == revisions):
            return hit[0]
        generation = (self._epoch, self._generation.get(team_id, 0))
        self.loads += 1
        role = await self._load(user_id, team_id)
        if (self._epoch, self._generation.get(team_id, 0)) == generation:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (role, self._monotonic(), revisions)
        return role

    def invalidate(self, team_id: str | None = None, user_id: str = "") -> None:
        if team_id is None:
            self._entries.clear()
            self._epoch += 1
            return
        self._generation[team_id] = self._generation.get(team_id, 0) + 1
        if user_id:
            self._entries.pop((user_id, team_id), None)
        else:
            for key in [k for k in self._entries if k[1] == team_id]:
                del self._entries[key]

    def on_message(self, subject: str, data: bytes) -> None:
        notice = nats_bus.decode(data, rbac_pb2.AuthorizationChanged, subject=subject)
        if notice is None:
            return
        team_id = notice.team_id or subject.rsplit(".", 1)[-1]
        self.invalidate(team_id, notice.user_id)
