"""The fixtures really start the servers the suite depends on."""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy import text

from deelrx_kit.db import create_engine


async def test_redis_answers(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    await client.set("k", "v")
    assert await client.get("k") == b"v"
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
