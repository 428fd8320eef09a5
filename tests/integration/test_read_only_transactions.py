"""`reading()` transactions and `single_read()` refuse writes on both databases instead of dropping them."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from deelrx_kit.db import create_engine, reading, session_factory, single_read, transaction


async def test_reads_work_and_writes_fail_loudly(database_url: str) -> None:
    engine = create_engine(database_url, "public")
    sessions = session_factory(engine)
    async with transaction(sessions) as tx:
        await tx.execute(text("CREATE TABLE notes (body VARCHAR(20))"))
        await tx.execute(text("INSERT INTO notes VALUES ('kept')"))
    async with reading(sessions) as session:
        assert (await session.execute(text("SELECT body FROM notes"))).scalar_one() == "kept"
    with pytest.raises(DBAPIError):
        async with reading(sessions) as session:
            await session.execute(text("INSERT INTO notes VALUES ('lost')"))
    # The pooled connection writes again in a normal transaction.
    async with transaction(sessions) as tx:
        await tx.execute(text("INSERT INTO notes VALUES ('second')"))
    async with reading(sessions) as session:
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 2
    await engine.dispose()


async def test_single_reads_see_committed_rows_and_refuse_writes(database_url: str) -> None:
    engine = create_engine(database_url, "public")
    sessions = session_factory(engine)
    async with transaction(sessions) as tx:
        await tx.execute(text("CREATE TABLE notes (body VARCHAR(20))"))
        await tx.execute(text("INSERT INTO notes VALUES ('kept')"))
    async with single_read(engine) as conn:
        assert (await conn.execute(text("SELECT body FROM notes"))).scalar_one() == "kept"
    with pytest.raises(DBAPIError):
        async with single_read(engine) as conn:
            await conn.execute(text("INSERT INTO notes VALUES ('lost')"))
    # A row committed after a single read is seen by the next one (no snapshot kept between reads).
    async with transaction(sessions) as tx:
        await tx.execute(text("INSERT INTO notes VALUES ('second')"))
    async with single_read(engine) as conn:
        assert (await conn.execute(text("SELECT count(*) FROM notes"))).scalar_one() == 2
    await engine.dispose()
