"""Snapshots: every team's authorization state in memory (`team_cache.TeamCache`), loaded
through the store and brought up to the stored revisions at start and after a NATS
reconnection, when change messages may have been missed."""

from __future__ import annotations

import structlog

from services.rbac.domain.team import TeamAuthorization
from services.rbac.ports import RbacStore, Transactions
from services.rbac.team_cache import TeamCache

log = structlog.get_logger(__name__)


class Snapshots:
    def __init__(self, transactions: Transactions, store: RbacStore) -> None:
        self.transactions = transactions
        self.store = store
        self.cache = TeamCache(self.load)

    async def load(self, team_id: str) -> TeamAuthorization:
        """The team as stored now (bypassing memory)."""
        async with self.transactions.reading() as session:
            return await self.store.load_team(session, team_id)

    async def get(self, team_id: str, min_revision: int = 0) -> TeamAuthorization:
        return await self.cache.get(team_id, min_revision)

    async def stored_revisions(self) -> dict[str, int]:
        async with self.transactions.reading() as session:
            return await self.store.all_revisions(session)

    async def resync(self, *, preload: bool = False) -> None:
        """Bring the in-memory teams up to the stored revisions."""
        revisions = await self.stored_revisions()
        stale = self.cache.resync(revisions)
        loaded = await self.cache.preload(revisions) if preload else 0
        log.info("rbac_resynced", teams=len(revisions), stale=stale, preloaded=loaded)
