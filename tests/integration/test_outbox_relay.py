"""The outbox relay: replicas claim rows so each staged event is published once, batches
are acknowledged asynchronously, and rows stay while NATS cannot take them."""

from __future__ import annotations

import asyncio
import uuid

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import db, nats_bus
from deelrx_kit.outbox import JetStreamProvider, Outbox, outbox_table
from tests.integration.harness import eventually


class AskedProvider(JetStreamProvider):
    """No NATS, and a count of how often the relay asked for it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def __call__(self) -> None:  # type: ignore[override]
        self.asked += 1
        return None


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
    await eventually(lambda: outbox.pending(sessions), lambda n: n == 0)  # type: ignore[arg-type]
    stop.set()
    await asyncio.gather(*relays)
    # Sentinel: the relays are done and published on this connection; a message sent after them
    # on it arrives after every one of theirs, duplicates included.
    await nats_client.publish(subject, b"", headers={"Nats-Msg-Id": "sentinel"})
    await eventually(lambda: seen, lambda got: "sentinel" in got)
    await sub.unsubscribe()
    await engine.dispose()  # type: ignore[attr-defined]
    relayed = seen[:-1]
    assert seen[-1] == "sentinel"
    assert len(relayed) == 500 and len(set(relayed)) == 500


async def test_rows_stay_while_nats_is_unreachable(database_url: str) -> None:
    outbox, engine, sessions = await _setup(database_url)
    async with db.transaction(sessions) as s:  # type: ignore[arg-type]
        event = audit_pb2.AuditEvent(id="evt_stays", type="relay.test")
        await outbox.add(s, "audit.events.relay", event, event.id)
    stop = asyncio.Event()
    provider = AskedProvider()
    relay = asyncio.create_task(outbox.relay(sessions, provider, stop, poll_seconds=0.05))  # type: ignore[arg-type]
    # Sentinel: the relay asked for NATS a second time, so its first attempt is over.
    await eventually(lambda: provider.asked, lambda n: n >= 2)
    stop.set()
    await relay
    assert await outbox.pending(sessions) == 1  # type: ignore[arg-type]
    await engine.dispose()  # type: ignore[attr-defined]
