"""The fixtures really start the servers the suite depends on."""

from __future__ import annotations

import uuid

import asyncpg
import redis.asyncio as aioredis
from sqlalchemy import text

from deelrx_kit.db import create_engine
from tests.conftest import Infra, _create_database, drop_database


async def test_redis_answers(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    key = f"infra-check:{uuid.uuid4().hex}"  # one Redis serves every test of the session
    await client.set(key, "v", ex=60)
    assert await client.get(key) == b"v"
    await client.aclose()


async def test_jetstream_stores_and_acknowledges(nats_client) -> None:
    # A server without JetStream answers "no responders" to both calls.
    js = nats_client.jetstream()
    await js.add_stream(name="INFRA_CHECK", subjects=["infra.check"])
    ack = await js.publish("infra.check", b"x")
    assert ack.stream == "INFRA_CHECK"
    stored = await js.get_msg("INFRA_CHECK", ack.seq)
    assert stored.data == b"x"
    await js.delete_stream("INFRA_CHECK")


async def test_database_roundtrip(database_url: str) -> None:
    engine = create_engine(database_url, "public")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES (1)"))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalar_one() == 1
    await engine.dispose()


async def test_a_tests_postgres_database_is_dropped_afterwards(infrastructure: Infra) -> None:
    """What the `postgres_url` fixture does after each test: the session's server would otherwise
    collect thousands of databases."""
    url = await _create_database(infrastructure.postgres_url)
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url)  # a connection left open, as a stopped service may leave one
    try:
        await drop_database(infrastructure.postgres_url, name)
        admin = await asyncpg.connect(infrastructure.postgres_url)
        try:
            assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
        finally:
            await admin.close()
    finally:
        await conn.close()
