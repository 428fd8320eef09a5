"""Listening to `rbac.changed.<team_id>` so this replica drops snapshots other replicas made stale."""

from __future__ import annotations

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.nats_bus import RBAC_CHANGED_PREFIX
from services.rbac.team_cache import TeamCache

log = structlog.get_logger(__name__)


class ChangeListener:
    def __init__(self, cache: TeamCache) -> None:
        self.cache = cache
        self._subscription: Subscription | None = None

    async def _on_message(self, msg: Msg) -> None:
        try:
            notice = rbac_pb2.AuthorizationChanged.FromString(msg.data)
        except DecodeError:
            log.warning("rbac_change_undecodable", subject=msg.subject)
            return
        team_id = notice.team_id or msg.subject.removeprefix(RBAC_CHANGED_PREFIX)
        self.cache.changed(team_id, notice.revision)

    async def subscribe(self, nc: NATS) -> None:
        """A plain (non-durable) subscription: a replica only cares about changes from now on.
        The client re-subscribes after reconnects; the cache's max age covers messages missed meanwhile."""
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception as exc:  # noqa: BLE001 - old connection already gone
                log.debug("rbac_unsubscribe_failed", error=str(exc))
        # Whatever was announced while we were not listening is unknown: start afresh.
        self.cache.clear()
        self._subscription = await nc.subscribe(RBAC_CHANGED_PREFIX + ">", cb=self._on_message)
        log.info("rbac_changes_subscribed")

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
