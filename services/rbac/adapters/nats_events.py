"""Listening to `rbac.changed.<team_id>` so this replica drops snapshots other replicas made stale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit import nats_bus
from deelrx_kit.nats_bus import RBAC_CHANGED_PREFIX
from services.rbac.team_cache import TeamCache

Resync = Callable[[], Awaitable[None]]

log = structlog.get_logger(__name__)


class ChangeListener:
    def __init__(self, cache: TeamCache, resync: Resync | None = None) -> None:
        self.cache = cache
        self._resync = resync
        self._subscription: Subscription | None = None

    async def _on_message(self, msg: Msg) -> None:
        notice = nats_bus.decode(msg, rbac_pb2.AuthorizationChanged)
        if notice is None:
            return
        team_id = notice.team_id or msg.subject.removeprefix(RBAC_CHANGED_PREFIX)
        self.cache.changed(team_id, notice.revision)

    async def subscribe(self, nc: NATS) -> None:
        """A plain (non-durable) subscription: a replica only cares about changes from now on.
        Called at every (re)connection; what was announced while we were not listening is
        found by comparing the stored revisions with the snapshots (one query)."""
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - old connection already gone
                log.debug("rbac_unsubscribe_failed", error=str(exc))
        self._subscription = await nc.subscribe(RBAC_CHANGED_PREFIX + ">", cb=self._on_message)
        await nc.flush()
        log.info("rbac_changes_subscribed")
        if self._resync is not None:
            try:
                await self._resync()
            except Exception as exc:  # noqa: BLE001 - fall back to forgetting everything
                log.warning("rbac_resync_failed", error=str(exc))
                self.cache.clear()
        else:
            self.cache.clear()

    @property
    def subscribed(self) -> bool:
        return self._subscription is not None

    async def close(self) -> None:
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # noqa: BLE001
                log.debug("rbac_unsubscribe_failed", error=str(exc))
            self._subscription = None
