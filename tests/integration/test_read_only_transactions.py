"""`reading()` transactions refuse writes on both databases instead of dropping them."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from deelrx_kit.db import create_engine, reading, session_factory, transaction


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
