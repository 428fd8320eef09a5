"""SQL storage of sessions, devices, refresh tokens and signing keys (SQLite and PostgreSQL).

Single-use state changes are conditional UPDATEs whose row count says who won, so they
stay correct when two replicas (or two requests) race on PostgreSQL, not only on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from deelrx_kit.db import UtcDateTime, dialect_insert, new_metadata, reading, single_read, transaction
from deelrx_kit.outbox import outbox_table
from services.sessions.domain.devices import Device
from services.sessions.domain.records import RefreshTokenRecord, SessionRecord, SigningKeyRecord

metadata = new_metadata()
outbox = outbox_table(metadata)

sessions_table = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), nullable=False),
    Column("team_id", String(40), nullable=False, default=""),
    Column("family_id", String(40), nullable=False, unique=True),
    Column("device_browser", String(100), nullable=False, default=""),
    Column("device_os", String(100), nullable=False, default=""),
    Column("device_type", String(16), nullable=False, default="other"),
    Column("device_label", String(210), nullable=False, default=""),
    Column("device_fingerprint", String(64), nullable=False, default=""),
    Column("ip", String(64), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("idle_timeout_seconds", Integer, nullable=False),
    Column("idle_expires_at", UtcDateTime, nullable=False),
    Column("amr", String(255), nullable=False, default="[]"),
    Column("auth_time", UtcDateTime, nullable=False),
    Column("scope", String(32), nullable=False, default=""),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revoke_reason", String(64), nullable=False, default=""),
    Index("ix_sessions_user_created", "user_id", "created_at"),
    Index("ix_sessions_revoked_at", "revoked_at"),
    # What the purge (services/sessions/purge.py) searches by.
    Index("ix_sessions_expires_at", "expires_at"),
    Index("ix_sessions_idle_expires_at", "idle_expires_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(40), nullable=False, index=True),
    Column("session_id", String(40), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("rotated_at", UtcDateTime, nullable=True),
    Column("successor_hash", String(64), nullable=True),
    Column("successor_sealed", LargeBinary, nullable=True),
    Index("ix_refresh_tokens_rotated_at", "rotated_at"),
)

devices = Table(
    "devices",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("browser", String(100), nullable=False),
    Column("os", String(100), nullable=False),
    Column("type", String(16), nullable=False),
    Column("label", String(210), nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(40), primary_key=True),
    # 1 on the one active key, NULL on retired ones: the unique constraint allows one active key
    # even when two replicas start or rotate at once.
    Column("active_slot", Integer, nullable=True, unique=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("private_key_sealed", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("retired_at", UtcDateTime, nullable=True),
    Column("activated_at", UtcDateTime, nullable=True),
    Column("withdrawn_at", UtcDateTime, nullable=True),
)

# One row; the scheduled rotation updates it first, so replicas take turns (a row lock on
# PostgreSQL, the write lock on SQLite) and each sees what the previous one did.
signing_key_lock = Table(
    "signing_key_lock",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("ran_at", UtcDateTime, nullable=False),
)

ACTIVE = 1


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        user_id=row.user_id,
        team_id=row.team_id,
        family_id=row.family_id,
        device_browser=row.device_browser,
        device_os=row.device_os,
        device_type=row.device_type,
        device_label=row.device_label,
        device_fingerprint=row.device_fingerprint,
        ip=row.ip,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        idle_timeout_seconds=row.idle_timeout_seconds,
        idle_expires_at=row.idle_expires_at,
        amr=tuple(json.loads(row.amr)),
        auth_time=row.auth_time,
        scope=row.scope,
        revoked_at=row.revoked_at,
        revoke_reason=row.revoke_reason,
    )


def _session_by_id(session_id: str) -> Select[Any]:
    return select(sessions_table).where(sessions_table.c.id == session_id)


def _not_revoked_live(now: datetime) -> Any:
    t = sessions_table.c
    return and_(t.revoked_at.is_(None), t.expires_at > now, t.idle_expires_at > now)


class SqlSessionStore:
    """Sessions, their refresh tokens and the devices users signed in from."""

    # -- sessions ---------------------------------------------------------------------
    async def insert_session(self, tx: AsyncSession, record: SessionRecord) -> None:
        await tx.execute(
            insert(sessions_table).values(
                id=record.id,
                user_id=record.user_id,
                team_id=record.team_id,
                family_id=record.family_id,
                device_browser=record.device_browser,
                device_os=record.device_os,
                device_type=record.device_type,
                device_label=record.device_label,
                device_fingerprint=record.device_fingerprint,
                ip=record.ip,
                created_at=record.created_at,
                last_seen_at=record.last_seen_at,
                expires_at=record.expires_at,
                idle_timeout_seconds=record.idle_timeout_seconds,
                idle_expires_at=record.idle_expires_at,
                amr=json.dumps(list(record.amr)),
                auth_time=record.auth_time,
                scope=record.scope,
                revoked_at=None,
                revoke_reason="",
            )
        )

    async def get_session(self, tx: AsyncSession, session_id: str, *, for_update: bool = False) -> SessionRecord | None:
        """With `for_update`, lock the row (PostgreSQL; SQLite transactions are serialized anyway).

        Every writer locks the session row before its refresh tokens, so a refresh and a
        revocation never wait on each other in opposite orders.
        """
        query = _session_by_id(session_id)
        if for_update:
            query = query.with_for_update()
        row = (await tx.execute(query)).first()
        return None if row is None else _session(row)

    async def save_live_session(self, tx: AsyncSession, record: SessionRecord) -> bool:
        """Write the mutable fields back unless the session was revoked meanwhile.

        The row lock this takes also orders a refresh against a concurrent revocation.
        """
        t = sessions_table.c
        result = await tx.execute(
            update(sessions_table)
            .where(t.id == record.id, t.revoked_at.is_(None))
            .values(
                team_id=record.team_id,
                ip=record.ip,
                last_seen_at=record.last_seen_at,
                expires_at=record.expires_at,
                idle_timeout_seconds=record.idle_timeout_seconds,
                idle_expires_at=record.idle_expires_at,
                amr=json.dumps(list(record.amr)),
                auth_time=record.auth_time,
            )
        )
        return _rowcount(result) == 1

    async def list_live_sessions(
        self, tx: AsyncSession, user_id: str, team_id: str, now: datetime
    ) -> list[SessionRecord]:
        t = sessions_table.c
        query = select(sessions_table).where(t.user_id == user_id, _not_revoked_live(now))
        if team_id:
            query = query.where(t.team_id == team_id)
        rows = await tx.execute(query.order_by(t.created_at.desc(), t.id.desc()))
        return [_session(r) for r in rows]

    async def live_session_ids(
        self,
        tx: AsyncSession,
        user_id: str,
        team_id: str,
        except_id: str,
        now: datetime,
        created_before: datetime | None = None,
    ) -> list[str]:
        t = sessions_table.c
        query = select(t.id).where(t.user_id == user_id, _not_revoked_live(now))
        if team_id:
            query = query.where(t.team_id == team_id)
        if except_id:
            query = query.where(t.id != except_id)
        if created_before is not None:
            query = query.where(t.created_at <= created_before)
        return list((await tx.execute(query)).scalars())

    async def revoke(
        self, tx: AsyncSession, session_ids: Sequence[str], now: datetime, reason: str
    ) -> list[tuple[str, str]]:
        """Mark sessions revoked; returns (id, team id) of those this call revoked, not of those
        already revoked, so a race between two revocations announces each session once."""
        if not session_ids:
            return []
        t = sessions_table.c
        result = await tx.execute(
            update(sessions_table)
            .where(t.id.in_(list(session_ids)), t.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason[:64])
            .returning(t.id, t.team_id, t.family_id)
        )
        rows = result.all()
        families = [r.family_id for r in rows]
        if families:
            # The family dies with the session: no successor may be handed out any more.
            await tx.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.family_id.in_(families), refresh_tokens.c.successor_sealed.is_not(None))
                .values(successor_sealed=None)
            )
        return [(r.id, r.team_id) for r in rows]

    async def touch_sessions(
        self, tx: AsyncSession, session_ids: Sequence[str], now: datetime, seen_before: datetime
    ) -> int:
        """Move `last_seen_at` to `now` on live sessions last seen before `seen_before`."""
        t = sessions_table.c
        result = await tx.execute(
            update(sessions_table)
            .where(t.id.in_(list(session_ids)), t.revoked_at.is_(None), t.last_seen_at < seen_before)
            .values(last_seen_at=now)
        )
        return _rowcount(result)

    async def end_scope(self, tx: AsyncSession, user_id: str, scope: str, now: datetime) -> int:
        """Live sessions of the user restricted to `scope` become full sessions (next refresh)."""
        t = sessions_table.c
        result = await tx.execute(
            update(sessions_table)
            .where(t.user_id == user_id, t.scope == scope, _not_revoked_live(now))
            .values(scope="")
        )
        return _rowcount(result)

    async def revoked_since(self, tx: AsyncSession, since: datetime) -> list[str]:
        t = sessions_table.c
        rows = await tx.execute(select(t.id).where(t.revoked_at >= since).order_by(t.revoked_at))
        return list(rows.scalars())

    # -- devices ----------------------------------------------------------------------
    async def record_device(self, tx: AsyncSession, user_id: str, device: Device, now: datetime) -> bool:
        """Remember that `user_id` used `device`; True when that is the first time."""
        values = {
            "user_id": user_id,
            "fingerprint": device.fingerprint,
            "browser": device.browser[:100],
            "os": device.os[:100],
            "type": device.type,
            "label": device.label[:210],
            "first_seen_at": now,
            "last_seen_at": now,
        }
        stmt = dialect_insert(tx, devices).values(**values)
        result = await tx.execute(stmt.on_conflict_do_nothing(index_elements=["user_id", "fingerprint"]))
        if _rowcount(result) == 1:
            return True
        await self.touch_device(tx, user_id, device.fingerprint, now)
        return False

    async def touch_device(self, tx: AsyncSession, user_id: str, fingerprint: str, now: datetime) -> None:
        await tx.execute(
            update(devices)
            .where(devices.c.user_id == user_id, devices.c.fingerprint == fingerprint, devices.c.last_seen_at < now)
            .values(last_seen_at=now)
        )

    # -- refresh tokens ---------------------------------------------------------------
    async def insert_refresh_token(self, tx: AsyncSession, record: RefreshTokenRecord) -> None:
        await tx.execute(
            insert(refresh_tokens).values(
                token_hash=record.token_hash,
                family_id=record.family_id,
                session_id=record.session_id,
                generation=record.generation,
                issued_at=record.issued_at,
                rotated_at=None,
                successor_hash=None,
                successor_sealed=None,
            )
        )

    async def get_refresh_token(self, tx: AsyncSession, token_hash: str) -> RefreshTokenRecord | None:
        row = (await tx.execute(select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))).first()
        if row is None:
            return None
        return RefreshTokenRecord(
            token_hash=row.token_hash,
            family_id=row.family_id,
            session_id=row.session_id,
            generation=row.generation,
            issued_at=row.issued_at,
            rotated_at=row.rotated_at,
            successor_hash=row.successor_hash,
            successor_sealed=row.successor_sealed,
        )

    async def current_refresh_token(self, tx: AsyncSession, family_id: str) -> RefreshTokenRecord | None:
        t = refresh_tokens.c
        row = (
            await tx.execute(
                select(refresh_tokens.c.token_hash).where(t.family_id == family_id, t.rotated_at.is_(None))
            )
        ).first()
        return None if row is None else await self.get_refresh_token(tx, row.token_hash)

    async def mark_rotated(
        self, tx: AsyncSession, token_hash: str, now: datetime, successor_hash: str, successor_sealed: bytes
    ) -> bool:
        """Rotate `token_hash` if it is still current; False when another request rotated it first."""
        t = refresh_tokens.c
        result = await tx.execute(
            update(refresh_tokens)
            .where(t.token_hash == token_hash, t.rotated_at.is_(None))
            .values(rotated_at=now, successor_hash=successor_hash, successor_sealed=successor_sealed)
        )
        return _rowcount(result) == 1

    async def forget_successor_of(self, tx: AsyncSession, family_id: str, successor_hash: str) -> None:
        """The successor is now in use: its predecessor may no longer hand it out."""
        t = refresh_tokens.c
        await tx.execute(
            update(refresh_tokens)
            .where(t.family_id == family_id, t.successor_hash == successor_hash, t.successor_sealed.is_not(None))
            .values(successor_sealed=None)
        )

    async def forget_stale_successors(self, tx: AsyncSession, rotated_before: datetime) -> int:
        t = refresh_tokens.c
        result = await tx.execute(
            update(refresh_tokens)
            .where(t.successor_sealed.is_not(None), t.rotated_at < rotated_before)
            .values(successor_sealed=None)
        )
        return _rowcount(result)


def _key(row: Any) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=row.kid,
        public_raw=bytes(row.public_key),
        private_sealed=bytes(row.private_key_sealed),
        active=row.active_slot == ACTIVE,
        created_at=row.created_at,
        retired_at=row.retired_at,
        activated_at=row.activated_at,
        withdrawn_at=row.withdrawn_at,
    )


class SqlSigningKeyStore:
    async def lock(self, tx: AsyncSession, holder: str, now: datetime) -> None:
        """Serialise key rotation across replicas until `tx` ends."""
        t = signing_key_lock.c
        result = await tx.execute(update(signing_key_lock).where(t.id == 1).values(holder=holder[:64], ran_at=now))
        if _rowcount(result) == 0:
            stmt = dialect_insert(tx, signing_key_lock).values(id=1, holder=holder[:64], ran_at=now)
            await tx.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
            await tx.execute(update(signing_key_lock).where(t.id == 1).values(holder=holder[:64], ran_at=now))

    async def pending(self, tx: AsyncSession) -> SigningKeyRecord | None:
        """The published successor that does not sign yet, if any."""
        t = signing_keys.c
        row = (
            await tx.execute(
                select(signing_keys)
                .where(t.active_slot.is_(None), t.activated_at.is_(None), t.retired_at.is_(None))
                .order_by(t.created_at)
            )
        ).first()
        return None if row is None else _key(row)

    async def insert_pending(
        self, tx: AsyncSession, kid: str, public_raw: bytes, private_sealed: bytes, now: datetime
    ) -> None:
        await tx.execute(
            insert(signing_keys).values(
                kid=kid,
                active_slot=None,
                public_key=public_raw,
                private_key_sealed=private_sealed,
                created_at=now,
                retired_at=None,
                activated_at=None,
            )
        )

    async def activate(self, tx: AsyncSession, kid: str, now: datetime) -> bool:
        """The pending key `kid` becomes the signing key (raises IntegrityError if one is active)."""
        t = signing_keys.c
        result = await tx.execute(
            update(signing_keys)
            .where(t.kid == kid, t.activated_at.is_(None), t.retired_at.is_(None))
            .values(active_slot=ACTIVE, activated_at=now)
        )
        return _rowcount(result) == 1

    async def active(self, tx: AsyncSession) -> SigningKeyRecord | None:
        row = (await tx.execute(select(signing_keys).where(signing_keys.c.active_slot == ACTIVE))).first()
        return None if row is None else _key(row)

    async def published(self, tx: AsyncSession, retired_after: datetime) -> list[SigningKeyRecord]:
        """The active key, the pending successor and keys retired after `retired_after`; never
        a withdrawn key."""
        t = signing_keys.c
        rows = await tx.execute(
            select(signing_keys).where(
                t.withdrawn_at.is_(None),
                or_(t.active_slot == ACTIVE, t.retired_at.is_(None), t.retired_at > retired_after),
            )
        )
        return [_key(r) for r in rows]

    async def insert_active(
        self, tx: AsyncSession, kid: str, public_raw: bytes, private_sealed: bytes, now: datetime
    ) -> None:
        """Raises IntegrityError when another key is active (the caller decides what that means)."""
        await tx.execute(
            insert(signing_keys).values(
                kid=kid,
                active_slot=ACTIVE,
                public_key=public_raw,
                private_key_sealed=private_sealed,
                created_at=now,
                retired_at=None,
                activated_at=now,
            )
        )

    async def retire_active(
        self, tx: AsyncSession, now: datetime, only_kid: str | None = None, *, withdraw: bool = False
    ) -> bool:
        t = signing_keys.c
        query = update(signing_keys).where(t.active_slot == ACTIVE)
        if only_kid is not None:
            query = query.where(t.kid == only_kid)
        values: dict[str, Any] = {"active_slot": None, "retired_at": now}
        if withdraw:
            values["withdrawn_at"] = now
        result = await tx.execute(query.values(**values))
        return _rowcount(result) == 1

    async def delete_retired_before(self, tx: AsyncSession, before: datetime) -> int:
        t = signing_keys.c
        result = await tx.execute(delete(signing_keys).where(t.active_slot.is_(None), t.retired_at < before))
        return _rowcount(result)


# Built once: the statement, its compiled form and cache key are reused by every GetSession.
_SESSION_BY_ID = select(sessions_table).where(sessions_table.c.id == bindparam("session_id"))


class SqlSessionReads:
    """The `SessionReads` port: each read is one statement outside any transaction of the
    caller (`deelrx_kit.db.single_read`), the cheap path for GetSession."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def session(self, session_id: str) -> SessionRecord | None:
        async with single_read(self.engine) as conn:
            row = (await conn.execute(_SESSION_BY_ID, {"session_id": session_id})).first()
        return None if row is None else _session(row)


class SqlTransactions:
    """The `Transactions` port over the service's engine (`deelrx_kit.db`)."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self.db = db

    def writing(self) -> AbstractAsyncContextManager[AsyncSession]:
        return transaction(self.db)

    def reading(self) -> AbstractAsyncContextManager[AsyncSession]:
        return reading(self.db)
