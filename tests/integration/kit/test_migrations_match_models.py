"""Every service's migrations build exactly the schema its SQLAlchemy tables describe.

alembic's autogenerate comparison runs against a database migrated to head, on SQLite and on
PostgreSQL; any difference (a table, column, type, nullability, index or constraint that one side
has and the other lacks) fails, so a migration that drifts from the code never reaches a deployment.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from deelrx_kit.db import create_engine, is_postgres, migrate

ROOT = Path(__file__).resolve().parents[3]
SERVICES_WITH_DATABASE = sorted(p.parent.name for p in (ROOT / "services").glob("*/migrations"))


def _metadata(service: str) -> MetaData:
    """The tables' module: `adapters/tables.py`, or `adapters/sql.py` where tables and queries share one."""
    module = "tables" if (ROOT / "services" / service / "adapters" / "tables.py").exists() else "sql"
    return importlib.import_module(f"services.{service}.adapters.{module}").metadata  # type: ignore[no-any-return]


def test_every_service_with_tables_is_checked() -> None:
    assert {"identity", "sessions", "rbac", "audit"} <= set(SERVICES_WITH_DATABASE)


@pytest.mark.parametrize("service", SERVICES_WITH_DATABASE)
async def test_migrations_match_the_models(service: str, database_url: str) -> None:
    schema = f"drift_{service}"
    await migrate(ROOT / "services" / service / "migrations", database_url, schema)
    metadata = _metadata(service)
    engine = create_engine(database_url, schema)

    def differences(connection: Any) -> list[Any]:
        # PostgreSQL partitions (audit events by month) are created at run time, one table per
        # month, as PARTITION OF a table the models describe; they are not models of their own.
        # Only tables that PostgreSQL itself marks as partitions are skipped.
        partitions: set[str] = set()
        if connection.dialect.name == "postgresql":
            partitions = set(
                connection.exec_driver_sql(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relispartition AND n.nspname = current_schema()"
                ).scalars()
            )

        def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
            return not (type_ == "table" and name in partitions)

        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
        found = compare_metadata(context, metadata)
        # alembic's own bookkeeping table is not part of the models.
        return [d for d in found if not (d[0] == "remove_table" and d[1].name == "alembic_version")]

    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    where = "PostgreSQL" if is_postgres(database_url) else "SQLite"
    assert diff == [], f"{service} migrations differ from its models on {where}: {diff}"
