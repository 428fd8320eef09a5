"""A database role per service: the migration role builds the schema, the runtime role reads and
writes only its own schema's rows: it cannot read another service's tables or change a table."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from deelrx_kit import db
from deelrx_kit.db_roles import migration_role, role_statements, runtime_role
from deelrx_kit.migrate import migrations_dir


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


async def test_runtime_roles_reach_only_their_own_schema(postgres_url: str) -> None:
    url = postgres_url
    database = make_url(url).database
    assert database
    suffix = database[-8:]  # role names are cluster-wide; keep each test run's own
    services = {"identity": f"identity{suffix}", "sessions": f"sessions{suffix}"}
    admin = await asyncpg.connect(url)
    try:
        for schema in services.values():
            for statement in role_statements(schema, database):
                await admin.execute(statement)
    finally:
        await admin.close()
    for service, schema in services.items():
        await db.migrate(migrations_dir(service), _as(url, migration_role(schema)), schema)

    app = await asyncpg.connect(_as(url, runtime_role(services["identity"])))
    try:
        own = services["identity"]
        tables = await app.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", own)
        assert tables
        table = tables[0]["tablename"]
        await app.fetch(f'SELECT * FROM "{own}"."{table}" LIMIT 1')
        other = services["sessions"]
        other_table = (await app.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", other))[0]["tablename"]
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.fetch(f'SELECT * FROM "{other}"."{other_table}" LIMIT 1')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute(f'ALTER TABLE "{own}"."{table}" ADD COLUMN evil text')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute(f'CREATE TABLE "{own}".evil (x int)')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute(f'DROP TABLE "{own}"."{table}"')
    finally:
        await app.close()
