"""The batch puller against a NATS server of its own: batches come in stream order, nothing is
delivered twice or lost between fetches, an idle fetch ends at the first message, and a consumer
that is gone or limits its batch size is reported or respected."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from deelrx_kit import nats_bus
from deelrx_kit.nats_pull import Puller, PullFailed
from deploy.local import infra
from tests.integration.harness import eventually

STREAM = "AUDIT"
DURABLE = "t-pull"


@pytest.fixture
async def nc(tmp_path: Path) -> AsyncIterator[NATS]:
    server = infra.start_nats(tmp_path / "nats")
    client = await nats.connect(server.url)
    js = client.jetstream()
    await nats_bus.ensure_streams(js)
    await nats_bus.ensure_consumer(js, STREAM, "audit.events.>", DURABLE)
    try:
        yield client
    finally:
        await client.close()
        server.stop()


async def _publish(js: JetStreamContext, first: int, count: int) -> None:
    acks = [js.publish_async(f"audit.events.p00.e{i}", str(i).encode()) for i in range(first, first + count)]
    await asyncio.gather(*[await a for a in acks])


async def _pending(js: JetStreamContext) -> tuple[int, int]:
    info = await js.consumer_info(STREAM, DURABLE)
    return info.num_pending, info.num_ack_pending


async def _puller(nc: NATS) -> Puller:
    puller = Puller(nc, STREAM, DURABLE)
    await puller.start()
    return puller


async def test_batches_come_in_order_each_message_once_then_an_idle_fetch_times_out(nc: NATS) -> None:
    js = nc.jetstream()
    await _publish(js, 0, 1000)
    puller = await _puller(nc)
    sizes, seen = [], []
    while len(seen) < 1000:
        msgs = await puller.fetch(300, wait=5)
        sizes.append(len(msgs))
        seen += [int(m.data) for m in msgs]
        for m in msgs:
            await m.ack()
    assert seen == list(range(1000))  # stream order, no message twice
    assert sizes == [300, 300, 300, 100]  # what is there is taken at once, up to the batch
    with pytest.raises(TimeoutError):
        await puller.fetch(300, wait=0.3)
    await puller.close()
    assert await _pending(js) == (0, 0)


async def test_an_idle_fetch_ends_with_the_first_message_and_keeps_what_follows_it(nc: NATS) -> None:
    js = nc.jetstream()
    puller = await _puller(nc)
    waiting = asyncio.create_task(puller.fetch(100, wait=30))
    await asyncio.sleep(0.3)
    await _publish(js, 0, 1)
    # Not the whole 30 s: the fetch ends once something came.
    assert [int(m.data) for m in await asyncio.wait_for(waiting, 10)] == [0]

    # The request that waited is still open on the server: what comes now lands in the
    # puller, delivered and unacknowledged, and the next fetch returns it once.
    await _publish(js, 1, 5)
    await eventually(lambda: _pending(js), lambda p: p == (0, 6), what="delivered to the waiting request")
    later = await puller.fetch(100, wait=5)
    assert [int(m.data) for m in later] == [1, 2, 3, 4, 5]
    assert all(m.metadata.num_delivered == 1 for m in later)
    await puller.close()


async def test_close_hands_back_what_was_delivered_and_not_fetched(nc: NATS) -> None:
    js = nc.jetstream()
    first = await _puller(nc)
    waiting = asyncio.create_task(first.fetch(100, wait=30))
    await asyncio.sleep(0.3)
    await _publish(js, 0, 1)
    [msg] = await asyncio.wait_for(waiting, 10)
    await msg.ack()
    await _publish(js, 1, 3)
    await eventually(lambda: _pending(js), lambda p: p == (0, 3), what="delivered to the first puller")
    await first.close()

    # Handed back at once: without the nak they would return only after the 10 s ack wait.
    second = await _puller(nc)
    again = await second.fetch(100, wait=5)
    # (JetStream does not promise the order of redeliveries.)
    assert sorted(int(m.data) for m in again) == [1, 2, 3]
    assert all(m.metadata.num_delivered == 2 for m in again)
    await second.close()


async def test_a_consumer_that_is_gone_fails_the_fetch(nc: NATS) -> None:
    js = nc.jetstream()
    puller = await _puller(nc)
    await js.delete_consumer(STREAM, DURABLE)
    with pytest.raises(PullFailed):
        await puller.fetch(10, wait=5)
    await puller.close()


async def test_an_operators_smaller_max_batch_is_respected(nc: NATS) -> None:
    js = nc.jetstream()
    info = await nc.request(f"$JS.API.CONSUMER.INFO.{STREAM}.{DURABLE}", b"", timeout=5)
    config = {**json.loads(info.data)["config"], "max_batch": 7}
    request = {"stream_name": STREAM, "config": config, "action": "update"}
    reply = await nc.request(f"$JS.API.CONSUMER.CREATE.{STREAM}.{DURABLE}", json.dumps(request).encode(), timeout=5)
    assert "error" not in json.loads(reply.data)
    await _publish(js, 0, 20)
    puller = await _puller(nc)
    sizes = []
    for _ in range(3):
        msgs = await puller.fetch(100, wait=5)
        sizes.append(len(msgs))
        for m in msgs:
            await m.ack()
    assert sizes == [7, 7, 6]
    await puller.close()


async def test_a_durable_pull_makes_its_consumer_again_after_it_was_deleted(nc: NATS) -> None:
    js = nc.jetstream()
    stop = asyncio.Event()
    pull = nats_bus.DurablePull(STREAM, "audit.events.>", "t-remade", nats_bus.MAX_DELIVER, stop)
    await _publish(js, 0, 2)
    assert [int(m.data) for m in await pull.fetch(js, 10, wait=5)] == [0, 1]  # made at the first fetch
    await js.delete_consumer(STREAM, "t-remade")
    with pytest.raises(PullFailed):
        await pull.fetch(js, 10, wait=5)
    # Made again (delivering from the start of the stream, as a new consumer does).
    assert [int(m.data) for m in await pull.fetch(js, 10, wait=5)] == [0, 1]
    assert (await js.consumer_info(STREAM, "t-remade")).config.max_deliver == nats_bus.MAX_DELIVER
    await pull.close()
