"""`rbac.changed.<team_id>` on core NATS: announcing this replica's changes at once, and listening
to other replicas' so this one drops the snapshots they made stale."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

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


class CoreNatsAnnouncer:
    """The `ChangeAnnouncer` port: publishes the change notice on core NATS before the write is
    answered, so a request that follows it is decided at this revision everywhere."""

    def __init__(self) -> None:
        # The runtime's connection, set once connected.
        self.nc: Any = None

    async def attach(self, nc: Any) -> None:
        self.nc = nc

    async def announce(self, team_id: str, revision: int, user_id: str) -> None:
        if self.nc is None or not self.nc.is_connected:
            return
        notice = rbac_pb2.AuthorizationChanged(team_id=team_id, revision=revision, user_id=user_id)
        try:
            await self.nc.publish(RBAC_CHANGED_PREFIX + team_id, notice.SerializeToString())
            await self.nc.flush(timeout=1)
        except Exception as exc:  # noqa: BLE001 - the outbox relay delivers it
            log.warning("rbac_announce_failed", team_id=team_id, error=str(exc))
