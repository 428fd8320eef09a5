"""SigningKeys: the access tokens' signing keys, one active Ed25519 key, sealed at rest.

A use-case module: it begins the transactions over the `SigningKeyStore` port and follows the
pure schedule of `domain/signing_keys.py`; the gRPC servicer calls it for the JWKS and for an
operator's rotation, the issuing use cases for the current signer (`TokenSigner` port).

Scheduled rotation (`maintain()`, every replica, one at a time under the rotation lock):
the successor is published `publish_ahead` before the active key's signing period ends, signs
from then on, and the retired key stays in the JWKS for twice the access TTL, so no token
ever names a key a verifier could not have fetched and nobody is logged out. An emergency
rotation withdraws the active key from the JWKS at once."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.clock import Clock
from deelrx_kit.ids import new_id
from services.sessions.domain import signing_keys
from services.sessions.domain.records import SigningKeyRecord
from services.sessions.domain.sealing import Sealer
from services.sessions.ports import SigningKeyStore, Transactions

log = structlog.get_logger(__name__)

# How long this process trusts its idea of the active key before asking the database again
# (another replica may have rotated; the old key stays published far longer than this).
ACTIVE_KEY_CACHE = timedelta(seconds=5)


@dataclass(frozen=True)
class Rotation:
    kid: str  # signing now
    retired_kid: str  # stopped signing ("" when there was no active key)


class SigningKeys:
    """The service's Ed25519 signing keys, private halves sealed at rest."""

    def __init__(
        self,
        transactions: Transactions,
        store: SigningKeyStore,
        sealer: Sealer,
        clock: Clock,
        access_ttl_seconds: int,
        schedule: signing_keys.RotationSchedule | None = None,
    ) -> None:
        self.transactions = transactions
        self.store = store
        self.sealer = sealer
        self.clock = clock
        self.access_ttl_seconds = access_ttl_seconds
        self.schedule = schedule or signing_keys.RotationSchedule(
            sign_for=signing_keys.AUTO_ROTATE_AFTER, publish_ahead=timedelta(minutes=10)
        )
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._active: tuple[str, datetime] | None = None  # (kid, when read)

    def _unseal(self, key: SigningKeyRecord) -> Ed25519PrivateKey:
        cached = self._private.get(key.kid)
        if cached is None:
            raw = self.sealer.open(key.private_sealed, aad=key.kid.encode())
            cached = self._private[key.kid] = signing_keys.private_key(raw)
        return cached

    async def _insert_new_active(self, tx: AsyncSession, now: datetime) -> str:
        kid, public_raw, sealed = await self._new_key()
        await self.store.insert_active(tx, kid, public_raw, sealed, now)
        return kid

    async def ensure_active(self) -> str:
        """There is always one active key; replicas starting together agree on one."""
        async with self.transactions.writing() as tx:
            current = await self.store.active(tx)
            if current is not None:
                return current.kid
        try:
            async with self.transactions.writing() as tx:
                kid = await self._insert_new_active(tx, self.clock.now())
        except IntegrityError:
            async with self.transactions.writing() as tx:
                current = await self.store.active(tx)
            if current is None:
                raise
            return current.kid
        log.info("signing_key_created", kid=kid)
        return kid

    async def signer(self) -> tuple[str, Ed25519PrivateKey]:
        if self._active is not None and timedelta(0) <= self.clock.now() - self._active[1] < ACTIVE_KEY_CACHE:
            kid = self._active[0]
            if kid in self._private:
                return kid, self._private[kid]
        for _ in range(2):
            async with self.transactions.writing() as tx:
                key = await self.store.active(tx)
            if key is not None:
                private = self._unseal(key)
                self._active = (key.kid, self.clock.now())
                return key.kid, private
            await self.ensure_active()
        raise RuntimeError("no active signing key")

    async def _new_key(self) -> tuple[str, bytes, bytes]:
        kid = new_id("key")
        pair = signing_keys.generate()
        return kid, pair.public_raw, self.sealer.seal(pair.private_raw, aad=kid.encode())

    async def rotate(self, *, emergency: bool = False) -> Rotation:
        """Rotate now. The published successor signs if there is one, else a new key (which
        verifiers fetch on its unknown `kid`). An emergency rotation withdraws the old key
        from the JWKS at once: tokens it signed stop verifying, clients renew."""
        kid, public_raw, sealed = await self._new_key()
        async with self.transactions.writing() as tx:
            now = self.clock.now()
            await self.store.lock(tx, self.holder, now)
            active = await self.store.active(tx)
            if active is not None:
                await self.store.retire_active(tx, now, only_kid=active.kid, withdraw=emergency)
            pending = await self.store.pending(tx)
            if pending is not None and await self.store.activate(tx, pending.kid, now):
                kid = pending.kid
            else:
                await self.store.insert_active(tx, kid, public_raw, sealed, now)
        self._active = None
        retired = active.kid if active is not None else ""
        if emergency and retired:
            self._private.pop(retired, None)
        log.warning("signing_key_rotated", kid=kid, retired_kid=retired, emergency=emergency)
        return Rotation(kid, retired)

    async def rotate_on_schedule(self) -> signing_keys.RotationStep:
        """One step of the scheduled rotation, under the rotation lock (one replica at a time;
        each re-reads what the previous one did)."""
        kid, public_raw, sealed = await self._new_key()
        async with self.transactions.writing() as tx:
            now = self.clock.now()
            await self.store.lock(tx, self.holder, now)
            active = await self.store.active(tx)
            if active is None:
                await self.store.insert_active(tx, kid, public_raw, sealed, now)
                log.info("signing_key_created", kid=kid)
                return signing_keys.RotationStep.ACTIVATE_NEXT
            pending = await self.store.pending(tx)
            step = signing_keys.next_step(
                active.activated_at or active.created_at,
                pending.created_at if pending is not None else None,
                now,
                self.schedule,
            )
            if step is signing_keys.RotationStep.PUBLISH_NEXT:
                await self.store.insert_pending(tx, kid, public_raw, sealed, now)
                log.info("signing_key_published", kid=kid, signs_from=str(now + self.schedule.publish_ahead))
            elif step is signing_keys.RotationStep.ACTIVATE_NEXT and pending is not None:
                await self.store.retire_active(tx, now, only_kid=active.kid)
                await self.store.activate(tx, pending.kid, now)
                log.info("signing_key_rotated", kid=pending.kid, retired_kid=active.kid, emergency=False)
        if step is signing_keys.RotationStep.ACTIVATE_NEXT:
            self._active = None
        return step

    async def jwks(self) -> dict[str, Any]:
        now = self.clock.now()
        window = signing_keys.publication_window(self.access_ttl_seconds)
        async with self.transactions.reading() as tx:
            keys = await self.store.published(tx, now - window)
        if not any(k.active for k in keys):
            await self.ensure_active()
            async with self.transactions.writing() as tx:
                keys = await self.store.published(tx, now - window)
        published = [signing_keys.PublishedKey(k.kid, k.public_raw, k.active, k.retired_at) for k in keys]
        return signing_keys.jwks(published, now, self.access_ttl_seconds)

    async def jwks_json(self) -> str:
        return json.dumps(await self.jwks(), separators=(",", ":"))

    async def maintain(self) -> None:
        """The scheduled rotation step; drop retired keys past their publication window."""
        await self.rotate_on_schedule()
        now = self.clock.now()
        async with self.transactions.writing() as tx:
            dropped = await self.store.delete_retired_before(
                tx, now - signing_keys.publication_window(self.access_ttl_seconds)
            )
        if dropped:
            # Forget unsealed private keys too; the active one is unsealed again on next use.
            self._private.clear()
            self._active = None
            log.info("signing_keys_dropped", count=dropped)
