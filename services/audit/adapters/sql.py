"""Audit tables and the queries over them. Append-only: nothing here updates or deletes an
event or an alert; the only UPDATE is the move of a chain head (retention deletes archived
events, services/audit/retention.py)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.clock import utc
from deelrx_kit.db import UtcDateTime, new_metadata
from services.audit.domain.alerts import AlertRecord
from services.audit.domain.events import ChainedEvent, EventRecord
from services.audit.domain.paging import Cursor

metadata = new_metadata()

# On PostgreSQL the events are partitioned by month of their time (declarative range
# partitioning; partition_sql.py keeps the months ahead created): a partitioned table's primary
# key must hold the partition key, so it is (id, time), and uniqueness of an event id and of a
# chain position, which a per-month index cannot enforce, lives in `event_ids` below.
# SQLite keeps a plain table of the same shape.
events = Table(
    "audit_events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("chain_key", String(160), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),
    Column("time", UtcDateTime, primary_key=True),
    Column("type", String(100), nullable=False),
    Column("team_id", String(64), nullable=False),
    Column("actor_user_id", String(64), nullable=False),
    Column("actor_ip", String(64), nullable=False),
    Column("actor_user_agent", String(512), nullable=False),
    Column("target_type", String(64), nullable=False),
    Column("target_id", String(128), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("details", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("subject_hash", String(128), nullable=False),
    Column("session_id", String(64), nullable=False),
    Index("ix_audit_events_chain_seq", "chain_key", "seq"),
    Index("ix_audit_events_team_time", "team_id", "time", "id"),
    Index("ix_audit_events_actor_time", "actor_user_id", "time", "id"),
    postgresql_partition_by="RANGE (time)",
)

# One narrow row per stored event, in one unpartitioned table: an event id is stored once
# (redeliveries are skipped) and a chain position is taken once (no fork), whatever the month.
event_ids = Table(
    "audit_event_ids",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("chain_key", String(160), nullable=False),
    Column("seq", Integer, nullable=False),
    UniqueConstraint("chain_key", "seq", name="uq_audit_event_ids_chain_seq"),
)

chain_heads = Table(
    "chain_heads",
    metadata,
    Column("chain_key", String(160), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("time", UtcDateTime, nullable=False),
    Column("rule", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("team_id", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("evidence", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("user_ids", Text, nullable=False),
    Column("event_ids", Text, nullable=False),
    Column("stored_at", UtcDateTime, nullable=False),
    Index("ix_alerts_team_time", "team_id", "time", "id"),
)

# Which accounts an account alert concerns, so a team can find alerts about its members.
alert_users = Table(
    "alert_users",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Index("ix_alert_users_user", "user_id"),
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- events ---------------------------------------------------------------------------------
async def chain_head(session: AsyncSession, chain_key: str) -> tuple[int, str] | None:
    row = (
        await session.execute(
            select(chain_heads.c.seq, chain_heads.c.head_hash).where(chain_heads.c.chain_key == chain_key)
        )
    ).first()
    return None if row is None else (row.seq, row.head_hash)


async def existing_event_ids(session: AsyncSession, ids: Collection[str]) -> set[str]:
    if not ids:
        return set()
    driver = await _postgres_driver(session)
    if driver is not None:
        # One array parameter instead of thousands of bound values, probed id by id through
        # the primary key. The plain `id = ANY($1)` was planned as a scan of the whole table:
        # as a generic plan cached while the table was young (comparing every row with every
        # id: a second per batch at 10,000 rows), and even freshly planned for a batch of
        # thousands of ids (a hashed scan reading all rows) until the table holds millions.
        # LATERAL ... LIMIT 1 cannot be flattened into such a join.
        found = await driver.fetch(
            "SELECT f.id FROM unnest($1::varchar[]) AS u(id) CROSS JOIN LATERAL "
            "(SELECT e.id FROM audit_event_ids e WHERE e.id = u.id LIMIT 1) f",
            list(ids),
        )
        return {r["id"] for r in found}
    rows = await session.execute(select(event_ids.c.id).where(event_ids.c.id.in_(list(ids))))
    return {r.id for r in rows}


async def _postgres_driver(session: AsyncSession) -> Any:
    """The transaction's asyncpg connection on PostgreSQL (None on SQLite): the bulk paths
    skip SQLAlchemy's per-row parameter handling, the largest cost of a big batch."""
    conn = await session.connection()
    if conn.dialect.name != "postgresql":
        return None
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def lock_heads(session: AsyncSession, chain_keys: Collection[str]) -> dict[str, tuple[int, str]]:
    """The heads of these chains, locked until the transaction ends (FOR UPDATE on
    PostgreSQL; on SQLite the writer transaction already excludes every other writer)."""
    query = select(chain_heads).where(chain_heads.c.chain_key.in_(sorted(chain_keys))).order_by(chain_heads.c.chain_key)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    rows = (await session.execute(query)).all()
    return {r.chain_key: (r.seq, r.head_hash) for r in rows}


async def set_heads(session: AsyncSession, moved: Sequence[ChainedEvent], created: Sequence[ChainedEvent]) -> None:
    """Heads locked by `lock_heads` move to `moved`; new chains start at `created` (a
    concurrent first append of the same chain fails on the primary key)."""
    if moved:
        await session.execute(
            update(chain_heads)
            .where(chain_heads.c.chain_key == bindparam("k"))
            .values(seq=bindparam("s"), head_hash=bindparam("h")),
            [{"k": c.chain_key, "s": c.seq, "h": c.hash} for c in moved],
        )
    if created:
        await session.execute(
            insert(chain_heads), [{"chain_key": c.chain_key, "seq": c.seq, "head_hash": c.hash} for c in created]
        )


EVENT_COLUMNS = tuple(c.name for c in events.columns)
ID_COLUMNS = ("id", "chain_key", "seq")


async def insert_events(session: AsyncSession, stored: Sequence[ChainedEvent]) -> None:
    """The id rows first: a duplicate id or chain position fails there (IntegrityError),
    before the wide rows. PostgreSQL: binary COPY; SQLite: the driver's executemany."""
    ids = [(c.event.id, c.chain_key, c.seq) for c in stored]
    rows = [_event_row(c) for c in stored]
    driver = await _postgres_driver(session)
    if driver is not None:
        import asyncpg

        try:
            await driver.copy_records_to_table("audit_event_ids", records=ids, columns=ID_COLUMNS)
            await driver.copy_records_to_table("audit_events", records=rows, columns=EVENT_COLUMNS)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError("COPY audit_event_ids", None, exc) from exc
        return
    conn = await session.connection()
    as_text = _sqlite_time
    await conn.exec_driver_sql(
        f"INSERT INTO audit_event_ids ({', '.join(ID_COLUMNS)}) VALUES (?, ?, ?)",  # noqa: S608 - constants
        ids,
    )
    placeholders = ", ".join("?" for _ in EVENT_COLUMNS)
    await conn.exec_driver_sql(
        f"INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608 - constants
        [(*r[:5], as_text(r[5]), as_text(r[6]), *r[7:]) for r in rows],
    )


def _sqlite_time(value: datetime) -> str:
    # What UtcDateTime stores on SQLite (naive UTC in SQLAlchemy's text format).
    u = value if value.tzinfo is UTC else utc(value)
    return u.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _event_row(stored: ChainedEvent) -> tuple[Any, ...]:
    """In EVENT_COLUMNS order."""
    e = stored.event
    return (
        e.id,
        stored.chain_key,
        stored.seq,
        stored.prev_hash,
        stored.hash,
        stored.stored_at,
        e.time,
        e.type,
        e.team_id,
        e.actor_user_id,
        e.actor_ip,
        e.actor_user_agent,
        e.target_type,
        e.target_id,
        e.outcome,
        _dumps(e.details),
        e.source,
        e.request_id,
        e.subject_hash,
        e.session_id,
    )


def _event_from_row(row: Row[Any]) -> ChainedEvent:
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"_unparseable": row.details}
    record = EventRecord(
        id=row.id,
        time=row.time,
        type=row.type,
        team_id=row.team_id,
        actor_user_id=row.actor_user_id,
        actor_ip=row.actor_ip,
        actor_user_agent=row.actor_user_agent,
        target_type=row.target_type,
        target_id=row.target_id,
        outcome=row.outcome,
        details=details if isinstance(details, dict) else {"_value": details},
        source=row.source,
        request_id=row.request_id,
        subject_hash=row.subject_hash,
        session_id=row.session_id,
    )
    return ChainedEvent(record, row.chain_key, row.seq, row.prev_hash, row.hash, row.stored_at)


def _type_filter(types: Collection[str]) -> Any:
    """Exact types, or a family with a trailing `.*` (e.g. `auth.*`)."""
    clauses = []
    for t in types:
        if t.endswith(".*"):
            clauses.append(events.c.type.startswith(t[:-1], autoescape=True))
        else:
            clauses.append(events.c.type == t)
    return or_(*clauses)


def _past(time: Any, id_: Any, after: Cursor, newest_first: bool) -> list[Any]:
    """Rows past a keyset cursor. The plain bound on the time comes first because SQLite cannot
    seek the index on the OR alone: it scanned from the first row of the team to the cursor, so
    each page of a long export cost more than the one before (2.9 s at the 600,000th event)."""
    if newest_first:
        return [time <= after.time, or_(time < after.time, and_(time == after.time, id_ < after.id))]
    return [time >= after.time, or_(time > after.time, and_(time == after.time, id_ > after.id))]


async def query_events(
    session: AsyncSession,
    *,
    team_id: str | None,
    actor_user_id: str | None,
    type_prefixes: Sequence[str] = (),
    types: Collection[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    after: Cursor | None = None,
    limit: int,
    newest_first: bool = True,
) -> list[ChainedEvent]:
    conds: list[Any] = []
    if team_id is not None:
        conds.append(events.c.team_id == team_id)
    if actor_user_id is not None:
        conds.append(events.c.actor_user_id == actor_user_id)
    if type_prefixes:
        conds.append(or_(*(events.c.type.startswith(p, autoescape=True) for p in type_prefixes)))
    if types:
        conds.append(_type_filter(types))
    if since is not None:
        conds.append(events.c.time >= since)
    if until is not None:
        conds.append(events.c.time < until)
    if after is not None:
        conds += _past(events.c.time, events.c.id, after, newest_first)
    order = (events.c.time.desc(), events.c.id.desc()) if newest_first else (events.c.time, events.c.id)
    rows = (await session.execute(select(events).where(*conds).order_by(*order).limit(limit))).all()
    return [_event_from_row(r) for r in rows]


async def chain_events(
    session: AsyncSession, chain_key: str, *, after_seq: int, up_to_seq: int, limit: int
) -> list[ChainedEvent]:
    rows = (
        await session.execute(
            select(events)
            .where(events.c.chain_key == chain_key, events.c.seq > after_seq, events.c.seq <= up_to_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )
    ).all()
    return [_event_from_row(r) for r in rows]


# -- alerts ---------------------------------------------------------------------------------
async def alert_exists(session: AsyncSession, alert_id: str) -> bool:
    return bool(await session.scalar(select(exists().where(alerts.c.id == alert_id))))


async def insert_alert(session: AsyncSession, alert: AlertRecord, stored_at: datetime) -> None:
    await session.execute(
        insert(alerts).values(
            id=alert.id,
            time=alert.time,
            rule=alert.rule,
            severity=alert.severity,
            team_id=alert.team_id,
            subject=alert.subject,
            evidence=_dumps(alert.evidence),
            status=alert.status,
            user_ids=_dumps(list(alert.user_ids)),
            event_ids=_dumps(list(alert.event_ids)),
            stored_at=stored_at,
        )
    )
    if alert.user_ids:
        await session.execute(
            insert(alert_users), [{"alert_id": alert.id, "user_id": u} for u in sorted(set(alert.user_ids))]
        )


def _alert_from_row(row: Row[Any]) -> AlertRecord:
    return AlertRecord(
        id=row.id,
        time=row.time,
        rule=row.rule,
        severity=row.severity,
        team_id=row.team_id,
        subject=row.subject,
        evidence=json.loads(row.evidence),
        status=row.status,
        user_ids=tuple(json.loads(row.user_ids)),
        event_ids=tuple(json.loads(row.event_ids)),
    )


async def get_alert(session: AsyncSession, alert_id: str) -> AlertRecord | None:
    row = (await session.execute(select(alerts).where(alerts.c.id == alert_id))).first()
    return None if row is None else _alert_from_row(row)


async def query_alerts(
    session: AsyncSession,
    *,
    team_id: str,
    member_user_ids: Collection[str],
    after: Cursor | None,
    limit: int,
    newest_first: bool = True,
) -> list[AlertRecord]:
    visible = alerts.c.team_id == team_id
    if member_user_ids:
        about_members = select(alert_users.c.alert_id).where(alert_users.c.user_id.in_(list(member_user_ids)))
        visible = or_(visible, and_(alerts.c.team_id == "", alerts.c.id.in_(about_members)))
    conds: list[Any] = [visible]
    if after is not None:
        conds += _past(alerts.c.time, alerts.c.id, after, newest_first)
    order = (alerts.c.time.desc(), alerts.c.id.desc()) if newest_first else (alerts.c.time, alerts.c.id)
    rows = (await session.execute(select(alerts).where(*conds).order_by(*order).limit(limit))).all()
    return [_alert_from_row(r) for r in rows]


# The audit schema is this metadata; the tables defined beside their queries register on it.
from services.audit.adapters import checkpoint_sql, partition_sql, triage_sql  # noqa: E402, F401
