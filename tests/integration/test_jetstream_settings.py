"""JetStream settings against a NATS server of its own: streams and consumers are created
with explicit settings when missing and never rewritten, except a consumer's filter, which
follows the subjects this version reads; a message that keeps failing, or cannot be read at
all, ends in the dead-letter stream with its error, counted in metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import APIError
from structlog.testing import capture_logs

from deelrx_kit import nats_bus
from deelrx_kit.metrics import DEAD_LETTERS
from deploy.local import infra
from tests.integration.harness import eventually


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    server = infra.start_nats(tmp_path / "nats")
    nc = await nats.connect(server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()
        server.stop()


async def test_streams_are_created_with_explicit_settings_and_never_rewritten(js: JetStreamContext) -> None:
    assert await nats_bus.ensure_streams(js) == {}
    audit = (await js.stream_info("AUDIT")).config
    assert getattr(audit.storage, "value", audit.storage) == "file" and audit.num_replicas == 1
    assert audit.max_age == 30 * 86400 and audit.max_bytes == 4 * nats_bus.GIB
    assert audit.duplicate_window == nats_bus.DUPLICATE_WINDOW_SECONDS
    assert (await js.stream_info("DEADLETTER")).config.subjects == ["deadletter.>"]

    # An operator keeps audit events longer; a new start must not undo it.
    audit.max_age = 90 * 86400
    await js.update_stream(audit)
    drift = await nats_bus.ensure_streams(js)
    assert drift == {"AUDIT": {"max_age": (30 * 86400, 90 * 86400)}}
    assert (await js.stream_info("AUDIT")).config.max_age == 90 * 86400


async def test_consumers_get_max_deliver_and_ack_wait_and_are_not_rewritten(js: JetStreamContext) -> None:
    await nats_bus.ensure_streams(js)
    assert await nats_bus.ensure_consumer(js, "AUDIT", "audit.events.>", "t-consumer", max_deliver=5) == {}
    info = (await js.consumer_info("AUDIT", "t-consumer")).config
    # No server-side backoff: its first step would replace the 30 s ack wait, and its later
    # steps would override the handlers' own nak delays.
    assert info.max_deliver == 5 and not info.backoff and info.ack_wait == nats_bus.ACK_WAIT_SECONDS == 10.0
    assert info.max_ack_pending == nats_bus.MAX_ACK_PENDING
    drift = await nats_bus.ensure_consumer(js, "AUDIT", "audit.events.>", "t-consumer", max_deliver=8)
    assert drift["max_deliver"] == (8, 5)
    assert (await js.consumer_info("AUDIT", "t-consumer")).config.max_deliver == 5


OLD_FILTER = "audit.events.member.removed"
NEW_FILTERS = ["audit.events.*.member.removed", "audit.events.member.removed"]


async def _stored_config(js: JetStreamContext, durable: str) -> dict:  # type: ignore[type-arg]
    """The consumer's configuration as the server keeps it (all fields, known to nats-py or not)."""
    msg = await js._nc.request(f"$JS.API.CONSUMER.INFO.AUDIT.{durable}", b"", timeout=5)
    return json.loads(msg.data)["config"]  # type: ignore[no-any-return]


async def _operator_edits(js: JetStreamContext, durable: str, **changes: object) -> None:
    """What `nats consumer edit` does: the stored configuration with some fields changed."""
    config = {**await _stored_config(js, durable), **changes}
    request = json.dumps({"stream_name": "AUDIT", "config": config, "action": "update"}).encode()
    reply = json.loads((await js._nc.request(f"$JS.API.CONSUMER.CREATE.AUDIT.{durable}", request, timeout=5)).data)
    assert "error" not in reply, reply


async def test_an_older_filter_is_replaced_and_the_operators_settings_are_kept(js: JetStreamContext) -> None:
    await nats_bus.ensure_streams(js)
    # Made by an older version, then tuned by an operator (max_batch is a field nats-py does not know).
    await nats_bus.ensure_consumer(js, "AUDIT", OLD_FILTER, "t-filter")
    await _operator_edits(js, "t-filter", max_deliver=12, max_batch=7)
    await js.publish("audit.events.p03.member.removed", b"partitioned", headers={"Nats-Msg-Id": "f1"})

    with capture_logs() as logs:
        drift = await nats_bus.ensure_consumer(js, "AUDIT", NEW_FILTERS, "t-filter", max_deliver=8)
    stored = await _stored_config(js, "t-filter")
    assert sorted(stored["filter_subjects"]) == NEW_FILTERS and "filter_subject" not in stored
    assert stored["max_deliver"] == 12 and stored["max_batch"] == 7  # the operator's, kept
    assert drift == {"max_deliver": (8, 12)}
    updated = [e for e in logs if e["event"] == "consumer_filter_updated"]
    assert [(e["old"], e["new"]) for e in updated] == [([OLD_FILTER], NEW_FILTERS)]
    # The event the old filter never matched is delivered now.
    sub = await js.pull_subscribe_bind(durable="t-filter", stream="AUDIT")
    assert [m.data for m in await sub.fetch(5, timeout=5)] == [b"partitioned"]  # max_batch 7

    # Back to one subject; and a filter that is already right is left alone.
    await nats_bus.ensure_consumer(js, "AUDIT", "audit.events.>", "t-filter", max_deliver=12)
    stored = await _stored_config(js, "t-filter")
    assert stored["filter_subject"] == "audit.events.>" and not stored.get("filter_subjects")
    with capture_logs() as logs:
        assert await nats_bus.ensure_consumer(js, "AUDIT", "audit.events.>", "t-filter", max_deliver=12) == {}
    assert not [e for e in logs if e["event"].startswith("consumer_filter")]


async def test_a_filter_the_server_refuses_fails_loudly_and_changes_nothing(js: JetStreamContext) -> None:
    await nats_bus.ensure_streams(js)
    await nats_bus.ensure_consumer(js, "AUDIT", OLD_FILTER, "t-refused")
    overlapping = ["audit.events.>", "audit.events.*.member.removed"]  # JetStream refuses overlaps
    with capture_logs() as logs, pytest.raises(APIError):
        await nats_bus.ensure_consumer(js, "AUDIT", overlapping, "t-refused")
    assert [e["log_level"] for e in logs if e["event"] == "consumer_filter_update_failed"] == ["error"]
    assert (await _stored_config(js, "t-refused"))["filter_subject"] == OLD_FILTER


async def test_failing_and_unreadable_messages_go_to_the_dead_letter_stream(js: JetStreamContext) -> None:
    await nats_bus.ensure_streams(js)
    before = DEAD_LETTERS.labels("t-dlq")._value.get()
    handled: list[bytes] = []
    attempts: dict[bytes, int] = {}

    async def handler(msg) -> None:  # type: ignore[no-untyped-def]
        attempts[msg.data] = attempts.get(msg.data, 0) + 1
        if msg.data == b"poison":
            raise nats_bus.PoisonMessage("unreadable")
        if msg.data == b"broken":
            raise RuntimeError("database says no")
        handled.append(msg.data)

    for i, body in enumerate([b"ok-1", b"poison", b"broken", b"ok-2"]):
        await js.publish("audit.events.test", body, headers={"Nats-Msg-Id": f"m{i}"})
    stop = asyncio.Event()
    task = asyncio.create_task(
        nats_bus.consume(
            js, stream="AUDIT", subject="audit.events.>", durable="t-dlq", handler=handler, stop=stop, max_deliver=2
        )
    )
    dead = await js.subscribe("deadletter.>", ordered_consumer=True)
    letters = []
    try:
        while len(letters) < 2:
            letters.append(await dead.next_msg(timeout=20))
    finally:
        stop.set()
        await task
    by_body = {m.data: m for m in letters}
    assert set(by_body) == {b"poison", b"broken"}
    assert handled == [b"ok-1", b"ok-2"]
    assert attempts[b"poison"] == 1 and attempts[b"broken"] == 2  # max_deliver, then no more
    broken = by_body[b"broken"]
    assert broken.subject == "deadletter.t-dlq"
    assert broken.headers["Deelrx-Error"] == "RuntimeError: database says no"
    assert broken.headers["Deelrx-Original-Subject"] == "audit.events.test"
    assert by_body[b"poison"].headers["Deelrx-Error"] == "poison: unreadable"
    assert DEAD_LETTERS.labels("t-dlq")._value.get() == before + 2


async def test_a_failing_message_comes_back_after_each_naks_own_delay(js: JetStreamContext) -> None:
    await nats_bus.ensure_streams(js)
    deliveries: list[int] = []

    async def handler(msg) -> None:  # type: ignore[no-untyped-def]
        deliveries.append(msg.metadata.num_delivered)
        if len(deliveries) < 4:
            raise RuntimeError("database says no")

    await js.publish("audit.events.test.retry", b"x", headers={"Nats-Msg-Id": "retry-1"})
    stop = asyncio.Event()
    task = asyncio.create_task(
        nats_bus.consume(
            js, stream="AUDIT", subject="audit.events.test.retry", durable="t-retry", handler=handler, stop=stop
        )
    )
    try:
        # Nak delays 1 s, 2 s, 5 s: the fourth delivery comes within seconds, not after a
        # backoff step of the consumer (30 s and more).
        await eventually(lambda: list(deliveries), lambda d: d == [1, 2, 3, 4], timeout=25)
    finally:
        stop.set()
        await task


async def test_a_consumer_made_from_now_skips_what_the_stream_held_before(js: JetStreamContext) -> None:
    await nats_bus.ensure_streams(js)
    await js.publish(nats_bus.ALERTS_SUBJECT, b"answered long ago", headers={"Nats-Msg-Id": "old"})
    assert await nats_bus.ensure_consumer(js, "ALERTS", nats_bus.ALERTS_SUBJECT, "t-new", from_now=True) == {}
    await js.publish(nats_bus.ALERTS_SUBJECT, b"raised now", headers={"Nats-Msg-Id": "new"})
    sub = await js.pull_subscribe_bind(durable="t-new", stream="ALERTS")
    assert [m.data for m in await sub.fetch(5, timeout=2)] == [b"raised now"]
    # A consumer made from the start reads both.
    await nats_bus.ensure_consumer(js, "ALERTS", nats_bus.ALERTS_SUBJECT, "t-all")
    sub = await js.pull_subscribe_bind(durable="t-all", stream="ALERTS")
    assert [m.data for m in await sub.fetch(5, timeout=2)] == [b"answered long ago", b"raised now"]
