"""Signing chain heads (Ed25519): periodically for every chain that moved, and on demand
after a successful verification. A head is signed only once the events since the previous
checkpoint verified, so a checkpoint never blesses a tampered tail.

The key is derived from DEELRX_SECRET_KEY for this purpose only (deelrx_kit.keys,
HKDF-SHA256, label "audit-checkpoint"); its id is a digest of the public key, stored with each
checkpoint. Rotating DEELRX_SECRET_KEY makes older checkpoints unverifiable: keep the old
secret for verification (not built yet).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import datetime

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit import keys
from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.keys import derive_key
from deelrx_kit.periodic import run_every
from services.audit.domain.checkpoints import Checkpoint, signed_message
from services.audit.domain.events import ChainVerifier
from services.audit.ports import CheckpointStore, EventStore

log = structlog.get_logger(__name__)

BATCH = 1000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CheckpointKey:
    def __init__(self, secret: bytes) -> None:
        seed = derive_key(secret, keys.AUDIT_CHECKPOINT)
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = self._private.public_key()
        raw = self._public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = "ckp_" + hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, chain_key: str, seq: int, head_hash: str, signed_at: datetime) -> Checkpoint:
        message = signed_message(chain_key, seq, head_hash, signed_at, self.key_id)
        return Checkpoint(chain_key, seq, head_hash, signed_at, self.key_id, _b64(self._private.sign(message)))

    def valid(self, cp: Checkpoint) -> bool:
        if cp.key_id != self.key_id:
            return False
        try:
            self._public.verify(_unb64(cp.signature), cp.message())
        except (InvalidSignature, ValueError):
            return False
        return True


class ChainCheckpoints:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        key: CheckpointKey,
        clock: Clock,
        *,
        events: EventStore,
        checkpoints: CheckpointStore,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.key = key
        self.clock = clock
        self.events = events
        self.checkpoints = checkpoints

    async def sign_head(self, chain_key: str) -> Checkpoint | None:
        """Verify what was appended since the last checkpoint, then sign the head."""
        async with reading(self.sessionmaker) as s:
            head = await self.events.chain_head(s, chain_key)
            previous = await self.checkpoints.for_chain(s, chain_key)
        if head is None:
            return None
        head_seq, head_hash = head
        last = previous[-1] if previous else None
        if last is not None and last.seq >= head_seq:
            return None  # nothing new (or truncated: verification reports it)
        if last is not None and not self.key.valid(last):
            log.warning("audit_checkpoint_invalid", chain_key=chain_key, seq=last.seq)
            return None
        verifier = ChainVerifier(
            chain_key, start_seq=last.seq if last else 0, start_hash=last.head_hash if last else "0" * 64
        )
        after = verifier.start_seq
        while True:
            async with reading(self.sessionmaker) as s:
                rows = await self.events.chain_events(s, chain_key, after_seq=after, up_to_seq=head_seq, limit=BATCH)
            for r in rows:
                verifier.feed(r)
            if len(rows) < BATCH:
                break
            after = rows[-1].seq
        check = verifier.result(head_seq, head_hash)
        if not check.ok:
            log.warning("audit_chain_broken", chain_key=chain_key, first_bad_event_id=check.first_bad_event_id)
            return None
        cp = self.key.sign(chain_key, head_seq, head_hash, self.clock.now())
        try:
            async with transaction(self.sessionmaker) as s:
                await self.checkpoints.add(s, cp)
        except IntegrityError:
            return None  # another replica signed this head
        return cp

    async def sign_moved_chains(self, limit: int = 1000) -> int:
        async with reading(self.sessionmaker) as s:
            keys = await self.checkpoints.chains_moved_since_checkpoint(s, limit)
        signed = 0
        for key in keys:
            if await self.sign_head(key) is not None:
                signed += 1
        return signed

    async def run(self, stop: asyncio.Event, interval_seconds: float) -> None:
        async def sign() -> None:
            signed = await self.sign_moved_chains()
            if signed:
                log.info("audit_checkpoints_signed", chains=signed)

        await run_every(interval_seconds, sign, stop, name="audit_checkpoints", wait_first=True)
