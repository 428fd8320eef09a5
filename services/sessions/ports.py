"""The narrow ports the use cases depend on: transactions, the SQL stores, hot reads, the
signing key and the revocation feed (audit events go through the kit's `AuditTrail`).
main.py wires the adapters; unit tests wire fakes."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from services.sessions.domain.devices import Device
from services.sessions.domain.records import (
    RefreshTokenRecord,
    RevocationNotice,
    SessionRecord,
    SigningKeyRecord,
)


class Transactions(Protocol):
    """Where transactions begin: every store call runs inside one of these."""

    def writing(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read-write unit of work: commit on success, roll back on any error."""

    def reading(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A read-only transaction (never takes SQLite's write lock)."""


class TokenSigner(Protocol):
    """The active access-token signing key."""

    async def signer(self) -> tuple[str, Ed25519PrivateKey]: ...


class SessionReads(Protocol):
    """Hot reads outside any use case's transaction (each is its own read-only transaction)."""

    async def session(self, session_id: str) -> SessionRecord | None: ...


class SessionStore(Protocol):
    """Sessions, devices and refresh tokens; every call runs inside the caller's transaction."""

    async def insert_session(self, tx: AsyncSession, record: SessionRecord) -> None: ...
    async def get_session(
        self, tx: AsyncSession, session_id: str, *, for_update: bool = False
    ) -> SessionRecord | None: ...
    async def save_live_session(self, tx: AsyncSession, record: SessionRecord) -> bool: ...
    async def list_live_sessions(
        self, tx: AsyncSession, user_id: str, team_id: str, now: datetime
    ) -> list[SessionRecord]: ...
    async def live_session_ids(
        self,
        tx: AsyncSession,
        user_id: str,
        team_id: str,
        except_id: str,
        now: datetime,
        created_before: datetime | None = None,
    ) -> list[str]: ...
    async def revoke(
        self, tx: AsyncSession, session_ids: Sequence[str], now: datetime, reason: str
    ) -> list[tuple[str, str]]: ...
    async def touch_sessions(
        self, tx: AsyncSession, session_ids: Sequence[str], now: datetime, seen_before: datetime
    ) -> int: ...
    async def end_scope(self, tx: AsyncSession, user_id: str, scope: str, now: datetime) -> int: ...
    async def revoked_since(self, tx: AsyncSession, since: datetime) -> list[str]: ...
    async def record_device(self, tx: AsyncSession, user_id: str, device: Device, now: datetime) -> bool: ...
    async def touch_device(self, tx: AsyncSession, user_id: str, fingerprint: str, now: datetime) -> None: ...
    async def insert_refresh_token(self, tx: AsyncSession, record: RefreshTokenRecord) -> None: ...
    async def get_refresh_token(self, tx: AsyncSession, token_hash: str) -> RefreshTokenRecord | None: ...
    async def current_refresh_token(self, tx: AsyncSession, family_id: str) -> RefreshTokenRecord | None: ...
    async def mark_rotated(
        self, tx: AsyncSession, token_hash: str, now: datetime, successor_hash: str, successor_sealed: bytes
    ) -> bool: ...
    async def forget_successor_of(self, tx: AsyncSession, family_id: str, successor_hash: str) -> None: ...
    async def forget_stale_successors(self, tx: AsyncSession, rotated_before: datetime) -> int: ...


class SigningKeyStore(Protocol):
    async def lock(self, tx: AsyncSession, holder: str, now: datetime) -> None: ...
    async def active(self, tx: AsyncSession) -> SigningKeyRecord | None: ...
    async def pending(self, tx: AsyncSession) -> SigningKeyRecord | None: ...
    async def insert_pending(
        self, tx: AsyncSession, kid: str, public_raw: bytes, private_sealed: bytes, now: datetime
    ) -> None: ...
    async def activate(self, tx: AsyncSession, kid: str, now: datetime) -> bool: ...
    async def published(self, tx: AsyncSession, retired_after: datetime) -> list[SigningKeyRecord]: ...
    async def insert_active(
        self, tx: AsyncSession, kid: str, public_raw: bytes, private_sealed: bytes, now: datetime
    ) -> None: ...
    async def retire_active(
        self, tx: AsyncSession, now: datetime, only_kid: str | None = None, *, withdraw: bool = False
    ) -> bool: ...
    async def delete_retired_before(self, tx: AsyncSession, before: datetime) -> int: ...


class RevocationPublisher(Protocol):
    """Tells every gateway at once that sessions are revoked."""

    # True after a fast-path write failed; the maintenance loop announces recent revocations again.
    behind: bool

    async def stage(self, tx: AsyncSession, notice: RevocationNotice) -> None:
        """Queue the `sessions.revoked` message in the same transaction as the revocation."""

    async def announce(self, session_ids: Sequence[str]) -> None:
        """After commit: fast paths (Redis fallback keys, wake the outbox relay). Never raises."""
