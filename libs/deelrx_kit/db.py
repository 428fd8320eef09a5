"""SQLAlchemy 2.x async engines for SQLite and PostgreSQL, and alembic migrations per service.

Each service owns its own tables: a SQLite file per service by default, or a PostgreSQL
schema named after the service (its `search_path`) when the URL points at PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, Table, TypeDecorator, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from deelrx_kit.clock import utc

READ_ONLY_OPTION = "deelrx_read_only"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)


def async_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite://` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def create_engine(url: str, schema: str, **kwargs: Any) -> AsyncEngine:
    """An engine whose connections see only `schema` on PostgreSQL."""
    url = async_url(url)
    # Statement parameters (password hashes, addresses, token hashes, mail bodies) never enter
    # error messages, which end up in logs.
    kwargs.setdefault("hide_parameters", True)
    if is_postgres(url):
        from deelrx_kit.infra_tls import postgres_tls

        url, tls = postgres_tls(url)
        connect_args: dict[str, Any] = {"server_settings": {"search_path": schema}}
        if tls is not None:
            connect_args["ssl"] = tls
        engine = create_async_engine(
            url,
            pool_size=kwargs.pop("pool_size", 10),
            max_overflow=kwargs.pop("max_overflow", 10),
            pool_pre_ping=True,
            connect_args=connect_args,
            **kwargs,
        )
    else:
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            # WAL lets readers run beside the single writer; busy_timeout queues writers.
            # Let SQLAlchemy's "begin" hook below issue BEGIN, not the driver.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock at BEGIN so read-then-write transactions serialize
            # instead of failing with "database is locked" on upgrade. Readers (`reading()`)
            # begin deferred: with WAL they neither wait for writers nor block them.
            # query_only makes a write inside `reading()` fail loudly instead of being
            # silently rolled back at the end.
            if conn.get_execution_options().get(READ_ONLY_OPTION):
                conn.exec_driver_sql("PRAGMA query_only = ON")
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("PRAGMA query_only = OFF")
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def dialect_insert(session: AsyncSession, table: Table) -> Any:
    """INSERT with `on_conflict_do_nothing/do_update` for whichever backend the session uses."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessionmaker() as session, session.begin():
        yield session


@asynccontextmanager
async def reading(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A read-only transaction: never takes SQLite's write lock; READ ONLY on PostgreSQL."""
    async with sessionmaker() as session:
        await session.connection(execution_options={READ_ONLY_OPTION: True, "postgresql_readonly": True})
        yield session


class _SyncRead:
    """A synchronous SQLite connection behind the async `execute` the stores call."""

    def __init__(self, conn: Connection, engine: AsyncEngine) -> None:
        self.conn = conn
        self.engine = engine

    async def execute(self, statement: Any, params: Any = None, /) -> Any:
        try:
            return self.conn.execute(statement, params)
        except OperationalError as exc:
            if getattr(exc.orig, "sqlite_errorcode", None) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            # Busy (rare under WAL, e.g. while a writer rebuilds the WAL index): wait for it the
            # usual way, off the event loop.
            async with self.engine.connect() as aconn:
                await aconn.execution_options(**{READ_ONLY_OPTION: True})
                return (await aconn.execute(statement, params)).freeze()()


_sqlite_readers: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def _sqlite_reader(engine: AsyncEngine) -> Engine:
    """A plain pysqlite engine on the same file, read-only, whose connections give up at once
    instead of waiting for a lock (WAL readers never wait for writers; the async path is the
    fallback for the rare moment they would). Disposed with `engine`."""
    reader = _sqlite_readers.get(engine.sync_engine)
    if reader is None:
        reader = sa_create_engine(
            engine.url.set(drivername="sqlite+pysqlite"),
            connect_args={"check_same_thread": False, "timeout": 0},
            hide_parameters=True,
        )

        @event.listens_for(reader, "connect")
        def _read_only(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # no implicit BEGIN: one SELECT is its own snapshot
            dbapi_conn.execute("PRAGMA query_only = ON")

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _dispose_reader(_: Any) -> None:
            gone = _sqlite_readers.pop(engine.sync_engine, None)
            if gone is not None:
                gone.dispose()

        _sqlite_readers[engine.sync_engine] = reader
    return reader


@asynccontextmanager
async def single_read(engine: AsyncEngine) -> AsyncIterator[Any]:
    """For exactly one read-only statement (the hot point reads), the cheapest consistent read.

    SQLite: the statement runs on the event loop through a plain sqlite3 connection. A WAL
    read of a few pages takes microseconds, far less than handing it to aiosqlite's thread and
    back (several thread switches per statement). PostgreSQL (and in-memory SQLite): a
    read-only transaction on a pooled connection, without an ORM session."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with _sqlite_reader(engine).connect() as conn:
            yield _SyncRead(conn, engine)
        return
    async with engine.connect() as aconn:
        await aconn.execution_options(**{READ_ONLY_OPTION: True, "postgresql_readonly": True})
        yield aconn


def _alembic_config(migrations_dir: Path, url: str, schema: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["url"] = async_url(url)
    cfg.attributes["schema"] = schema
    return cfg


async def migrate(migrations_dir: Path, url: str, schema: str) -> None:
    """Bring the service's schema to the newest revision (idempotent, safe on every start)."""
    from alembic import command

    cfg = _alembic_config(migrations_dir, url, schema)
    # alembic's env runs its own event loop; keep it off ours.
    await asyncio.to_thread(command.upgrade, cfg, "head")
