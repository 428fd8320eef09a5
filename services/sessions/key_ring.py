"""The signing keys of access tokens: one active Ed25519 key, sealed at rest, rotated on
demand or by age; retired keys stay in the JWKS for twice the access TTL."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError
from deelrx_kit.ids import new_id
from services.sessions.domain import signing_keys
from services.sessions.domain.records import SigningKeyRecord
from services.sessions.domain.sealing import Sealer
from services.sessions.ports import SigningKeyStore

log = structlog.get_logger(__name__)

# How long this process trusts its idea of the active key before asking the database again
# (another replica may have rotated; the old key stays published far longer than this).
ACTIVE_KEY_CACHE_SECONDS = 5.0


class KeyRing:
    """The service's Ed25519 signing keys, private halves sealed at rest."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        store: SigningKeyStore,
        sealer: Sealer,
        clock: Clock,
        access_ttl_seconds: int,
    ) -> None:
        self.db = db
        self.store = store
        self.sealer = sealer
        self.clock = clock
        self.access_ttl_seconds = access_ttl_seconds
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._active: tuple[str, float] | None = None  # (kid, monotonic time read)

    def _unseal(self, key: SigningKeyRecord) -> Ed25519PrivateKey:
        cached = self._private.get(key.kid)
        if cached is None:
            raw = self.sealer.open(key.private_sealed, aad=key.kid.encode())
            cached = self._private[key.kid] = signing_keys.private_key(raw)
        return cached

    async def _insert_new_active(self, tx: AsyncSession, now: datetime) -> str:
        kid = new_id("key")
        pair = signing_keys.generate()
        sealed = self.sealer.seal(pair.private_raw, aad=kid.encode())
        await self.store.insert_active(tx, kid, pair.public_raw, sealed, now)
        return kid

    async def ensure_active(self) -> str:
        """There is always one active key; replicas starting together agree on one."""
        async with transaction(self.db) as tx:
            current = await self.store.active(tx)
            if current is not None:
                return current.kid
        try:
            async with transaction(self.db) as tx:
                kid = await self._insert_new_active(tx, self.clock.now())
        except IntegrityError:
            async with transaction(self.db) as tx:
                current = await self.store.active(tx)
            if current is None:
                raise
            return current.kid
        log.info("signing_key_created", kid=kid)
        return kid

    async def signer(self) -> tuple[str, Ed25519PrivateKey]:
        if self._active is not None and time.monotonic() - self._active[1] < ACTIVE_KEY_CACHE_SECONDS:
            kid = self._active[0]
            if kid in self._private:
                return kid, self._private[kid]
        for _ in range(2):
            async with transaction(self.db) as tx:
                key = await self.store.active(tx)
            if key is not None:
                private = self._unseal(key)
                self._active = (key.kid, time.monotonic())
                return key.kid, private
            await self.ensure_active()
        raise RuntimeError("no active signing key")

    async def rotate(self, *, only_if_kid: str | None = None) -> str | None:
        """Retire the active key and make a new one; the retired key stays published.

        With `only_if_kid`, rotate only while that key is still the active one (the automatic
        rotation of several replicas then happens once).
        """
        for _ in range(3):
            now = self.clock.now()
            try:
                async with transaction(self.db) as tx:
                    retired = await self.store.retire_active(tx, now, only_kid=only_if_kid)
                    if only_if_kid is not None and not retired:
                        return None
                    kid = await self._insert_new_active(tx, now)
            except IntegrityError:
                continue  # another rotation committed between our two statements: go again
            self._active = None
            log.info("signing_key_rotated", kid=kid)
            return kid
        raise DomainError("conflict", "Key rotation raced; try again")

    async def jwks(self) -> dict[str, Any]:
        now = self.clock.now()
        window = signing_keys.publication_window(self.access_ttl_seconds)
        async with reading(self.db) as tx:
            keys = await self.store.published(tx, now - window)
        if not any(k.active for k in keys):
            await self.ensure_active()
            async with transaction(self.db) as tx:
                keys = await self.store.published(tx, now - window)
        published = [signing_keys.PublishedKey(k.kid, k.public_raw, k.active, k.retired_at) for k in keys]
        return signing_keys.jwks(published, now, self.access_ttl_seconds)

    async def maintain(self) -> None:
        """Rotate an old active key; drop retired keys past their publication window."""
        now = self.clock.now()
        async with transaction(self.db) as tx:
            active = await self.store.active(tx)
        if active is None:
            await self.ensure_active()
        elif signing_keys.due_for_rotation(active.created_at, now):
            await self.rotate(only_if_kid=active.kid)
        async with transaction(self.db) as tx:
            dropped = await self.store.delete_retired_before(
                tx, now - signing_keys.publication_window(self.access_ttl_seconds)
            )
        if dropped:
            # Forget unsealed private keys too; the active one is unsealed again on next use.
            self._private.clear()
            self._active = None
            log.info("signing_keys_dropped", count=dropped)
