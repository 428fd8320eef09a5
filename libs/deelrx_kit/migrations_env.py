"""The body of every service's alembic `env.py`: async engine, per-service schema."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from deelrx_kit.db import create_engine, is_postgres


def run(context: Any, metadata: MetaData) -> None:
    cfg = context.config
    url: str = cfg.attributes["url"]
    schema: str = cfg.attributes["schema"]

    def do_migrations(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table="alembic_version",
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        if is_postgres(url):
            bootstrap = create_engine(url, "public")
            async with bootstrap.begin() as conn:
                # Concurrent first starts of replicas race here; IF NOT EXISTS settles it.
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await bootstrap.dispose()
        engine = create_engine(url, schema)
        async with engine.connect() as conn:
            if is_postgres(url):
                # Replicas starting together: one migrates, the others wait and find it done.
                await conn.execute(text("SELECT pg_advisory_lock(hashtext(:s))"), {"s": f"deelrx-migrate-{schema}"})
                await conn.commit()
            await conn.run_sync(do_migrations)
            await conn.commit()
        await engine.dispose()

    if context.is_offline_mode():
        raise SystemExit("offline migrations are not supported; run them against a database")
    asyncio.run(main())
