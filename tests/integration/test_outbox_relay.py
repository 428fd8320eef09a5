"""The outbox relay: replicas claim rows so each staged event is published once, batches
are acknowledged asynchronously, and rows stay while NATS cannot take them."""

from __future__ import annotations

import asyncio
import uuid

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import db, nats_bus
from deelrx_kit.outbox import JetStreamProvider, Outbox, outbox_table


async def _setup(database_url: str) -> tuple[Outbox, object, object]:
    metadata = db.new_metadata()
    table = outbox_table(metadata)
    engine = db.create_engine(database_url, "public")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return Outbox(table), engine, db.session_factory(engine)


async def test_two_relays_publish_every_row_exactly_once(database_url: str, nats_client) -> None:
    js = nats_client.jetstream()
    await nats_bus.ensure_streams(js)
    outbox, engine, sessions = await _setup(database_url)
    subject = f"audit.events.relay_{uuid.uuid4().hex[:8]}"
    for _chunk in range(5):
        async with db.transaction(sessions) as s:  # type: ignore[arg-type]
            for _i in range(100):
                event = audit_pb2.AuditEvent(id=f"evt_{uuid.uuid4().hex}", type="relay.test")
                await outbox.add(s, subject, event, event.id)
    seen: list[str] = []

    async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(msg.headers["Nats-Msg-Id"])

    sub = await nats_client.subscribe(subject, cb=on_msg)  # sees every publish, duplicates included
    provider = JetStreamProvider()
    provider.js = js
    stop = asyncio.Event()
    second = Outbox(outbox.table)
    relays = [
        asyncio.create_task(o.relay(sessions, provider, stop, poll_seconds=0.05, batch=50))  # type: ignore[arg-type]
        for o in (outbox, second)
    ]
    for _ in range(200):
        if await outbox.pending(sessions) == 0 and len(seen) >= 500:  # type: ignore[arg-type]
            break
        await asyncio.sleep(0.05)
    await nats_client.flush()
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*relays)
    await sub.unsubscribe()
    await engine.dispose()  # type: ignore[attr-defined]
    assert len(seen) == 500 and len(set(seen)) == 500


async def test_rows_stay_while_nats_is_unreachable(database_url: str) -> None:
    outbox, engine, sessions = await _setup(database_url)
    async with db.transaction(sessions) as s:  # type: ignore[arg-type]
        event = audit_pb2.AuditEvent(id="evt_stays", type="relay.test")
        await outbox.add(s, "audit.events.relay", event, event.id)
    stop = asyncio.Event()
    relay = asyncio.create_task(outbox.relay(sessions, JetStreamProvider(), stop, poll_seconds=0.05))  # type: ignore[arg-type]
    await asyncio.sleep(0.5)
    stop.set()
    await relay
    assert await outbox.pending(sessions) == 1  # type: ignore[arg-type]
    await engine.dispose()  # type: ignore[attr-defined]
