"""The redelivery check (which of a batch's event ids are stored already) probes the id index,
however young the table was when the connection first ran it and however large the batch.

With `id = ANY($1)`, PostgreSQL cached a generic plan made while `audit_event_ids` was empty,
which compared every row with every id (a second per batch at 10,000 rows), and planned a
fresh statement for a batch of thousands of ids as a scan of the whole table."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from deelrx_kit.db import create_engine, migrate, session_factory, transaction
from deelrx_kit.ids import new_id
from services.audit.adapters import sql

MIGRATIONS = Path(__file__).parents[3] / "services" / "audit" / "migrations"


async def _scans(sessionmaker) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Scans of the id table so far (this backend's counts are flushed when a transaction ends)."""
    async with transaction(sessionmaker) as s:
        await s.execute(text("SELECT pg_stat_force_next_flush()"))
    async with transaction(sessionmaker) as s:
        row = (
            await s.execute(
                text("SELECT seq_scan, idx_scan FROM pg_stat_user_tables WHERE relname = 'audit_event_ids'")
            )
        ).one()
    return int(row.seq_scan), int(row.idx_scan or 0)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_redelivery_check_reads_the_index_after_the_table_grew(database_url: str) -> None:
    await migrate(MIGRATIONS, database_url, "audit")
    # One pooled connection: the statement the lookup prepares while the table is empty is the
    # one it runs again after the table grew.
    engine = create_engine(database_url, "audit", pool_size=1, max_overflow=0)
    sessionmaker = session_factory(engine)
    try:
        probe = [new_id("evt") for _ in range(2000)]  # a batch of the size the consumers store
        for _ in range(10):  # past the point where PostgreSQL settles on a generic plan
            async with transaction(sessionmaker) as s:
                assert await sql.existing_event_ids(s, probe) == set()
        stored = [(new_id("evt"), "team:tm_grow", seq) for seq in range(1, 20_001)]
        async with transaction(sessionmaker) as s:
            raw = await sql._postgres_driver(s)
            await raw.copy_records_to_table("audit_event_ids", records=stored, columns=sql.ID_COLUMNS)
        seq_before, idx_before = await _scans(sessionmaker)
        wanted = [stored[7][0], stored[19_000][0], *probe]
        async with transaction(sessionmaker) as s:
            assert await sql.existing_event_ids(s, wanted) == {stored[7][0], stored[19_000][0]}
        seq_after, idx_after = await _scans(sessionmaker)
        assert seq_after == seq_before, "the lookup scanned the whole id table"
        assert idx_after > idx_before
    finally:
        await engine.dispose()
