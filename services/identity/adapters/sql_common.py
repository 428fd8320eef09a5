"""Statement helpers the SQL repositories share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table

from deelrx_kit.db import dialect_insert
from services.identity.ports import Tx


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE changed (0 when the driver cannot tell)."""
    return int(result.rowcount or 0)


async def changed(tx: Tx, statement: Any) -> int:
    return rowcount(await tx.execute(statement))


async def insert_ignore(tx: Tx, table: Table, values: dict[str, Any]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING on either backend; 1 when the row was new."""
    return await changed(tx, dialect_insert(tx, table).values(**values).on_conflict_do_nothing())  # type: ignore[arg-type]
