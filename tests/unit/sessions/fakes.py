"""In-memory fakes of the sessions ports, and the use cases wired over them (no servers).

A fake transaction restores every fake's state when its block raises, so a use case that
fails half-way leaves nothing behind, as the SQL adapters' transactions do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import FrozenClock
from deelrx_kit.settings import Settings
from services.sessions.domain.devices import Device
from services.sessions.domain.records import RefreshTokenRecord, RevocationNotice, SessionRecord
from services.sessions.events import SessionEvents
from services.sessions.issuing import Issuing
from services.sessions.listing import Listing
from services.sessions.refresh import Refresh
from services.sessions.revocation import Revocation
from services.sessions.tokens import TokenMint
from tests.unit.fake_ports import FakeOutbox, FakeTransactions, Rollback


class FakeSessionStore(Rollback):
    def __init__(self) -> None:
        self.sessions: dict[str, SessionRecord] = {}
        self.tokens: dict[str, RefreshTokenRecord] = {}
        self.devices: dict[tuple[str, str], datetime] = {}

    @staticmethod
    def _live(s: SessionRecord, now: datetime) -> bool:
        return s.revoked_at is None and s.expires_at > now and s.idle_expires_at > now

    async def insert_session(self, tx: AsyncSession, record: SessionRecord) -> None:
        self.sessions[record.id] = record

    async def get_session(self, tx: AsyncSession, session_id: str, *, for_update: bool = False) -> SessionRecord | None:
        return self.sessions.get(session_id)

    async def save_live_session(self, tx: AsyncSession, record: SessionRecord) -> bool:
        stored = self.sessions.get(record.id)
        if stored is None or stored.revoked_at is not None:
            return False
        self.sessions[record.id] = replace(record, revoked_at=None, revoke_reason="", scope=stored.scope)
        return True

    async def list_live_sessions(
        self, tx: AsyncSession, user_id: str, team_id: str, now: datetime
    ) -> list[SessionRecord]:
        found = [
            s
            for s in self.sessions.values()
            if s.user_id == user_id and self._live(s, now) and (not team_id or s.team_id == team_id)
        ]
        return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)

    async def live_session_ids(
        self,
        tx: AsyncSession,
        user_id: str,
        team_id: str,
        except_id: str,
        now: datetime,
        created_before: datetime | None = None,
    ) -> list[str]:
        return [
            s.id
            for s in await self.list_live_sessions(tx, user_id, team_id, now)
            if s.id != except_id and (created_before is None or s.created_at <= created_before)
        ]

    async def revoke(
        self, tx: AsyncSession, session_ids: Sequence[str], now: datetime, reason: str
    ) -> list[tuple[str, str]]:
        revoked = []
        for sid in session_ids:
            s = self.sessions.get(sid)
            if s is None or s.revoked_at is not None:
                continue
            self.sessions[sid] = s.but(revoked_at=now, revoke_reason=reason[:64])
            revoked.append((sid, s.team_id))
            for h, t in self.tokens.items():
                if t.family_id == s.family_id:
                    self.tokens[h] = replace(t, successor_sealed=None)
        return revoked

    async def touch_sessions(
        self, tx: AsyncSession, session_ids: Sequence[str], now: datetime, seen_before: datetime
    ) -> int:
        touched = 0
        for sid in session_ids:
            s = self.sessions.get(sid)
            if s is not None and s.revoked_at is None and s.last_seen_at < seen_before:
                self.sessions[sid] = s.but(last_seen_at=now)
                touched += 1
        return touched

    async def end_scope(self, tx: AsyncSession, user_id: str, scope: str, now: datetime) -> int:
        ended = 0
        for sid, s in list(self.sessions.items()):
            if s.user_id == user_id and s.scope == scope and self._live(s, now):
                self.sessions[sid] = s.but(scope="")
                ended += 1
        return ended

    async def revoked_since(self, tx: AsyncSession, since: datetime) -> list[str]:
        found = [s for s in self.sessions.values() if s.revoked_at is not None and s.revoked_at >= since]
        return [s.id for s in sorted(found, key=lambda s: s.revoked_at or since)]

    async def record_device(self, tx: AsyncSession, user_id: str, device: Device, now: datetime) -> bool:
        key = (user_id, device.fingerprint)
        first = key not in self.devices
        self.devices[key] = now
        return first

    async def touch_device(self, tx: AsyncSession, user_id: str, fingerprint: str, now: datetime) -> None:
        if (user_id, fingerprint) in self.devices:
            self.devices[(user_id, fingerprint)] = now

    async def insert_refresh_token(self, tx: AsyncSession, record: RefreshTokenRecord) -> None:
        assert record.token_hash not in self.tokens
        self.tokens[record.token_hash] = record

    async def get_refresh_token(self, tx: AsyncSession, token_hash: str) -> RefreshTokenRecord | None:
        return self.tokens.get(token_hash)

    async def current_refresh_token(self, tx: AsyncSession, family_id: str) -> RefreshTokenRecord | None:
        current = [t for t in self.tokens.values() if t.family_id == family_id and t.rotated_at is None]
        return max(current, key=lambda t: t.generation) if current else None

    async def mark_rotated(
        self, tx: AsyncSession, token_hash: str, now: datetime, successor_hash: str, successor_sealed: bytes
    ) -> bool:
        t = self.tokens.get(token_hash)
        if t is None or t.rotated_at is not None:
            return False
        self.tokens[token_hash] = replace(
            t, rotated_at=now, successor_hash=successor_hash, successor_sealed=successor_sealed
        )
        return True

    async def forget_successor_of(self, tx: AsyncSession, family_id: str, successor_hash: str) -> None:
        for h, t in self.tokens.items():
            if t.family_id == family_id and t.successor_hash == successor_hash:
                self.tokens[h] = replace(t, successor_sealed=None)

    async def forget_stale_successors(self, tx: AsyncSession, rotated_before: datetime) -> int:
        forgotten = 0
        for h, t in self.tokens.items():
            if t.successor_sealed is not None and t.rotated_at is not None and t.rotated_at < rotated_before:
                self.tokens[h] = replace(t, successor_sealed=None)
                forgotten += 1
        return forgotten


class FakeSessionReads:
    def __init__(self, store: FakeSessionStore) -> None:
        self.store = store

    async def session(self, session_id: str) -> SessionRecord | None:
        return self.store.sessions.get(session_id)


class FakeRevocations(Rollback):
    def __init__(self) -> None:
        self.staged: list[RevocationNotice] = []
        self._announced: list[str] = []
        self.behind = False

    async def stage(self, tx: AsyncSession, notice: RevocationNotice) -> None:
        self.staged.append(notice)

    async def announce(self, session_ids: Sequence[str]) -> None:
        self._announced.extend(session_ids)

    @property
    def announced(self) -> list[str]:
        return self._announced


class FakeSigner:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()

    async def signer(self) -> tuple[str, Ed25519PrivateKey]:
        return "key_test", self.key


@dataclass
class World:
    clock: FrozenClock
    store: FakeSessionStore
    outbox: FakeOutbox
    revocations: FakeRevocations
    transactions: FakeTransactions
    issuing: Issuing
    refresh: Refresh
    revocation: Revocation
    listing: Listing
    settings: Settings = field(repr=False)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_key": "unit-test-secret-0123456789abcdef-0123",
        "public_url": "https://auth.example.test",
        "refresh_grace_seconds": 10,
        "session_idle_timeout_minutes": 30,
        "session_absolute_timeout_hours": 12,
        "metrics_enabled": False,
    }
    return Settings(**(values | overrides))


def world(**overrides: Any) -> World:
    s = settings(**overrides)
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    store, outbox, revocations = FakeSessionStore(), FakeOutbox(), FakeRevocations()
    transactions = FakeTransactions(store, outbox, revocations)
    events = SessionEvents(AuditTrail(outbox, source="sessions", clock=clock))
    keys = FakeSigner()
    mint = TokenMint(s, store, clock)
    revocation = Revocation(
        settings=s, transactions=transactions, store=store, revocations=revocations, events=events, clock=clock
    )
    return World(
        clock=clock,
        store=store,
        outbox=outbox,
        revocations=revocations,
        transactions=transactions,
        issuing=Issuing(
            settings=s, transactions=transactions, store=store, keys=keys, mint=mint, events=events, clock=clock
        ),
        refresh=Refresh(
            transactions=transactions,
            store=store,
            keys=keys,
            mint=mint,
            revocation=revocation,
            events=events,
            clock=clock,
            grace_seconds=s.refresh_grace_seconds,
        ),
        revocation=revocation,
        listing=Listing(transactions=transactions, store=store, reads=FakeSessionReads(store), clock=clock),
        settings=s,
    )
