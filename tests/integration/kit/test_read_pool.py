"""ReadPool: hot reads in one read-only transaction, on SQLite (a worker thread with its own
query_only connections) and on PostgreSQL (the async engine, READ ONLY)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from deelrx_kit import db
from deelrx_kit.read_pool import ReadPool

metadata = MetaData()
things = Table("read_pool_things", metadata, Column("id", String(16), primary_key=True), Column("name", String(32)))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url, "public")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_reads_see_committed_rows_and_writes_are_refused(engine: AsyncEngine) -> None:
    pool = ReadPool(engine)
    try:

        def first_name(conn: Connection) -> str | None:
            return conn.execute(select(things.c.name).where(things.c.id == "t1")).scalar_one_or_none()

        assert await pool.run(first_name) is None
        async with db.transaction(db.session_factory(engine)) as tx:
            await tx.execute(insert(things).values(id="t1", name="first"))
        assert await pool.run(first_name) == "first"
        assert await pool.run(first_name, snapshot=False) == "first"

        def write(conn: Connection) -> None:
            conn.execute(insert(things).values(id="t2", name="sneaky"))

        with pytest.raises(DBAPIError):
            await pool.run(write)
        async with db.reading(db.session_factory(engine)) as tx:
            assert (await tx.execute(select(things.c.id))).scalars().all() == ["t1"]
    finally:
        await pool.close()
