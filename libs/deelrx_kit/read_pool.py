"""Read-only queries whose whole transaction costs one hop off the event loop.

On SQLite, `db.reading()` goes through aiosqlite: every cursor, execute, fetch and close is
its own round trip to the connection's thread and back (about a dozen per read with the
PRAGMA, BEGIN and ROLLBACK), which costs far more CPU than the query. `ReadPool.run(fn)` runs
`fn` with a synchronous SQLAlchemy connection inside one worker thread instead: BEGIN
(deferred), the queries, ROLLBACK, one hop. Its connections are `query_only`, so a write in
`fn` fails loudly. On PostgreSQL, `fn` runs through the service's async engine (asyncpg has no
threads to hop to) in a READ ONLY transaction.

Only for hot reads that need no transaction of the caller (e.g. GetSession); the use cases'
own transactions still begin in `db.transaction()` / `db.reading()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

DEFAULT_WORKERS = 4
_AUTOCOMMIT = "deelrx_single_statement"


class ReadPool:
    def __init__(self, engine: AsyncEngine, *, workers: int = DEFAULT_WORKERS) -> None:
        self._async_engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._executor: ThreadPoolExecutor | None = None
        if self._sqlite:
            url = engine.url.set(drivername="sqlite")
            self._engine = create_engine(
                url,
                pool_size=workers,
                max_overflow=0,
                hide_parameters=True,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(self._engine, "connect", _read_only_sqlite)
            event.listen(self._engine, "begin", _begin_deferred)
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deelrx-read")

    def _in_thread(self, fn: Callable[[Connection], T], snapshot: bool) -> T:
        with self._engine.connect() as conn:
            if not snapshot:
                # One statement is its own transaction (autocommit): no BEGIN/COMMIT around it.
                return fn(conn.execution_options(**{_AUTOCOMMIT: True}))
            with conn.begin():
                return fn(conn)

    async def run(self, fn: Callable[[Connection], T], *, snapshot: bool = True) -> T:
        """`fn(connection)` in one read-only transaction; its result. `snapshot=False` for an
        `fn` that runs a single statement, which needs no transaction around it (SQLite)."""
        if self._executor is not None:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._in_thread, fn, snapshot)
        async with self._async_engine.connect() as conn:
            conn = await conn.execution_options(postgresql_readonly=True)
            async with conn.begin():
                return await conn.run_sync(fn)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
            self._engine.dispose()


def _read_only_sqlite(dbapi_conn: Any, _: Any) -> None:
    # SQLAlchemy's "begin" hook below issues BEGIN, not the driver; WAL (set by the writers'
    # engine) lets these readers run beside the single writer without waiting.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only = ON")
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.close()


def _begin_deferred(conn: Connection) -> None:
    if not conn.get_execution_options().get(_AUTOCOMMIT):
        conn.exec_driver_sql("BEGIN")
