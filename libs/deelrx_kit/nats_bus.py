"""NATS JetStream: connection, the suite's streams, publishing and durable consumers."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError

from deelrx_kit.metrics import DEAD_LETTERS
from deelrx_kit.nats_pull import Puller, PullFailed, connection

log = structlog.get_logger("deelrx.nats")

# Subjects. Audit events go to `audit.events.pNN.<type>` (audit_partitions); alerts to `security.alerts`.
AUDIT_SUBJECT_PREFIX = "audit.events."
ALERTS_SUBJECT = "security.alerts"
SESSIONS_REVOKED_SUBJECT = "sessions.revoked"
TEAM_CHANGED_SUBJECT = "teams.changed"
RBAC_CHANGED_PREFIX = "rbac.changed."


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: list[str]
    max_age_seconds: int
    max_bytes: int


# Dedup window: a relay retry within it is dropped by JetStream (Nats-Msg-Id).
DUPLICATE_WINDOW_SECONDS = 600
DEAD_LETTER_PREFIX = "deadletter."
GIB = 1024**3

# Explicit limits: when a stream is full the oldest messages go (discard old), so size the
# AUDIT stream for the longest outage of the audit service you want to ride out.
# JetStream reserves max_bytes against the server's storage, so the defaults stay modest;
# production sets DEELRX_NATS_AUDIT_MAX_BYTES (docs/operations.md).
STREAMS = [
    StreamSpec("AUDIT", [f"{AUDIT_SUBJECT_PREFIX}>"], 30 * 86400, 4 * GIB),
    StreamSpec("ALERTS", [ALERTS_SUBJECT], 30 * 86400, GIB // 4),
    StreamSpec("CONTROL", [SESSIONS_REVOKED_SUBJECT, TEAM_CHANGED_SUBJECT, f"{RBAC_CHANGED_PREFIX}>"], 86400, GIB // 4),
    StreamSpec("DEADLETTER", [f"{DEAD_LETTER_PREFIX}>"], 90 * 86400, GIB // 4),
]

# Consumers: a handler that fails naks its message, asking for delivery n+1 after
# NAK_DELAYS_SECONDS[n-1]; a message that failed MAX_DELIVER times goes to the dead-letter
# stream. A message nobody acks (its consumer died, or stopped while the message was on its
# way, as when an audit partition moves to another replica) is delivered again after
# ACK_WAIT_SECONDS: long enough for a fetched batch to be stored (the audit consumers keep
# at most two transactions' worth waiting), short enough for a handover.
# No server-side `backoff`: JetStream takes its first step as the ack wait (a one-second step
# redelivered every event of a batch that waited a second behind a busy writer), and from the
# second delivery on it lets the backoff step, not the nak's own delay, decide when the message
# comes back.
ACK_WAIT_SECONDS = 10
MAX_DELIVER = 8
NAK_DELAYS_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_ACK_PENDING = 10_000


def nak_delay(delivered: int) -> float:
    """How long a message that failed at its `delivered`-th delivery waits before the next."""
    return NAK_DELAYS_SECONDS[min(max(delivered, 1), len(NAK_DELAYS_SECONDS)) - 1]


async def connect(
    url: str,
    name: str,
    *,
    on_disconnected: Callable[[], Awaitable[None]] | None = None,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
    tls: ssl.SSLContext | None = None,
) -> NATS:
    """Connect, retrying forever in the background once connected (over TLS with `tls`)."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))

    async def on_disconnect() -> None:
        log.warning("nats_disconnected")
        if on_disconnected is not None:
            await on_disconnected()

    async def on_reconnect() -> None:
        log.info("nats_reconnected")
        if on_reconnected is not None:
            await on_reconnected()

    extra: dict[str, Any] = {"tls": tls} if tls is not None else {}
    return await nats.connect(
        url,
        name=name,
        **extra,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


def stream_config(spec: StreamSpec, replicas: int = 1, audit_max_bytes: int | None = None) -> StreamConfig:
    max_bytes = audit_max_bytes if spec.name == "AUDIT" and audit_max_bytes else spec.max_bytes
    return StreamConfig(
        name=spec.name,
        subjects=spec.subjects,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_age=spec.max_age_seconds,
        max_bytes=max_bytes,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


STREAM_FIELDS = ("subjects", "storage", "num_replicas", "max_age", "max_bytes", "duplicate_window")


def differences(wanted: Any, found: Any, fields: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    out = {}
    for name in fields:
        w, f = getattr(wanted, name), getattr(found, name)
        w, f = getattr(w, "value", w), getattr(f, "value", f)  # enums come back as text
        if isinstance(w, list) and isinstance(f, list):
            w, f = sorted(w), sorted(f)
        if isinstance(w, float | int) and isinstance(f, float | int) and abs(w - f) < 1e-6:
            continue
        if w != f:
            out[name] = (w, f)
    return out


async def ensure_streams(
    js: JetStreamContext, replicas: int = 1, audit_max_bytes: int | None = None
) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Create the suite's streams that are missing, with explicit settings.

    An existing stream is never changed: an operator may have tuned it (replicas, limits).
    Settings that differ from this version's are logged and returned, not rewritten.
    """
    drift: dict[str, dict[str, tuple[Any, Any]]] = {}
    for spec in STREAMS:
        config = stream_config(spec, replicas, audit_max_bytes)
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
                log.info("stream_created", stream=spec.name, replicas=replicas)
                continue
            except BadRequestError:  # created meanwhile by another process
                info = await js.stream_info(spec.name)
        found = differences(config, info.config, STREAM_FIELDS)
        if found:
            drift[spec.name] = found
            log.warning(
                "stream_settings_differ",
                stream=spec.name,
                kept={k: v[1] for k, v in found.items()},
                this_version_wants={k: v[0] for k, v in found.items()},
            )
    return drift


M = TypeVar("M", bound=Message)


def decode(msg: Msg | bytes, message_type: type[M], *, subject: str = "") -> M | None:
    """The `message_type` carried by `msg` (a NATS message or its payload), or None, logged,
    when it is not one: the caller drops it. From a durable consumer, returning then acks the
    message, as no redelivery can make it readable (raise `PoisonMessage` to keep it instead)."""
    if isinstance(msg, bytes):
        data = msg
    else:
        data, subject = msg.data, subject or msg.subject
    message: M = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError:
        log.warning("message_undecodable", type=message_type.DESCRIPTOR.full_name, subject=subject, size=len(data))
        return None
    return message


Handler = Callable[[Msg], Awaitable[None]]
BatchHandler = Callable[[list[Msg]], Awaitable[list[Msg]]]


class PoisonMessage(Exception):
    """A message no retry can fix (unreadable, incomplete): dead-lettered at once."""


def consumer_config(durable: str, max_deliver: int = MAX_DELIVER, *, from_now: bool = False) -> ConsumerConfig:
    """`from_now`: a new consumer starts at the stream's end instead of its start (for one whose
    handler acts on the world, so that its first start does not act on a month of old messages)."""
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW if from_now else DeliverPolicy.ALL,
        ack_wait=ACK_WAIT_SECONDS,
        max_deliver=max_deliver,
        max_ack_pending=MAX_ACK_PENDING,
    )


# A consumer's filter: one subject, or several (NATS 2.10+; they must not overlap).
Filter = str | Sequence[str]


def filter_list(subject: Filter | None, subjects: Sequence[str] | None = None) -> list[str]:
    """The filter subjects, sorted, whichever of the two fields holds them."""
    if isinstance(subject, str):
        found = [subject] if subject else []
    else:
        found = list(subject or [])
    return sorted(found + list(subjects or []))


def with_filter(config: ConsumerConfig, subject: Filter) -> ConsumerConfig:
    """`config` filtered on `subject`: `filter_subject` for one, `filter_subjects` for several."""
    wanted = filter_list(subject)
    config.filter_subject = wanted[0] if len(wanted) == 1 else None
    config.filter_subjects = wanted if len(wanted) > 1 else None
    return config


CONSUMER_FIELDS = ("ack_policy", "deliver_policy", "ack_wait", "max_deliver", "backoff", "max_ack_pending")


async def ensure_consumer(
    js: JetStreamContext,
    stream: str,
    subject: Filter,
    durable: str,
    max_deliver: int = MAX_DELIVER,
    *,
    from_now: bool = False,
) -> dict[str, tuple[Any, Any]]:
    """Create the durable consumer when missing. An existing one keeps its settings (those that
    differ are logged and returned), except its filter, which is set to `subject`.

    The filter is the exception: an older version's filter (a subject this version no longer
    publishes on) reads nothing, silently, while the other settings are an operator's tuning.
    """
    config = with_filter(consumer_config(durable, max_deliver, from_now=from_now), subject)
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        try:
            await js.add_consumer(stream, config=config)
            log.info("consumer_created", stream=stream, durable=durable)
            return {}
        except BadRequestError:
            info = await js.consumer_info(stream, durable)
    found_filter = filter_list(info.config.filter_subject, info.config.filter_subjects)
    if found_filter != filter_list(subject):
        await _update_filter(js, stream, durable, found_filter, filter_list(subject))
    found = differences(config, info.config, CONSUMER_FIELDS)
    if found:
        log.warning(
            "consumer_settings_differ",
            durable=durable,
            kept={k: v[1] for k, v in found.items()},
            this_version_wants={k: v[0] for k, v in found.items()},
        )
    return found


async def _update_filter(js: JetStreamContext, stream: str, durable: str, old: list[str], new: list[str]) -> None:
    """Give the existing consumer the filter `new`, every other setting as stored.

    The stored configuration goes back as the server gave it: nats-py (2.16) has no update
    call, and its add_consumer sends a ConsumerConfig, which drops the fields nats-py does not
    know (max_batch, max_expires, priority groups...), so a round trip through it would reset
    those. A server that refuses raises: the caller retries, and never
    reads with the old filter meanwhile.
    """
    api = js._prefix  # the JetStream API prefix the context was made with
    try:
        stored = (await js._api_request(f"{api}.CONSUMER.INFO.{stream}.{durable}"))["config"]
        stored.pop("filter_subject", None)
        stored.pop("filter_subjects", None)
        if len(new) == 1:
            stored["filter_subject"] = new[0]
        else:
            stored["filter_subjects"] = new
        request = {"stream_name": stream, "config": stored, "action": "update"}
        # The subject nats-py creates durables on, so a NATS account allowed that may update too.
        await js._api_request(f"{api}.CONSUMER.DURABLE.CREATE.{stream}.{durable}", json.dumps(request).encode())
    except APIError as exc:
        log.error("consumer_filter_update_failed", stream=stream, durable=durable, old=old, new=new, error=str(exc))
        raise
    log.warning("consumer_filter_updated", stream=stream, durable=durable, old=old, new=new)


async def dead_letter(js: JetStreamContext, msg: Msg, durable: str, error: str) -> None:
    """Keep the message with why it failed on `deadletter.<durable>`, then stop redelivering it."""
    meta = msg.metadata
    headers = {
        "Deelrx-Original-Subject": msg.subject,
        "Deelrx-Durable": durable,
        "Deelrx-Error": error[:500],
        "Deelrx-Deliveries": str(meta.num_delivered),
        "Deelrx-Stream-Sequence": str(meta.sequence.stream),
    }
    msg_id = (msg.headers or {}).get("Nats-Msg-Id")
    if msg_id:
        headers["Nats-Msg-Id"] = f"{durable}:{msg_id}"
    await js.publish(f"{DEAD_LETTER_PREFIX}{durable}", msg.data, headers=headers, timeout=5)
    DEAD_LETTERS.labels(durable).inc()
    log.error("message_dead_lettered", durable=durable, subject=msg.subject, error=error[:200])
    await msg.term()


class DurablePull:
    """Batches from a durable consumer that is made when missing: the consumer and its Puller
    are made at the first fetch, and again after a PullFailed (the consumer was deleted, or its
    stream's leader changed)."""

    def __init__(
        self,
        stream: str,
        subject: Filter,
        durable: str,
        max_deliver: int,
        stop: asyncio.Event,
        *,
        from_now: bool = False,
    ) -> None:
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.max_deliver = max_deliver
        self.from_now = from_now
        self._stop = stop
        self._puller: Puller | None = None

    async def fetch(self, js: JetStreamContext, batch: int, *, wait: float) -> list[Msg]:
        if self._puller is None:
            await ensure_consumer(js, self.stream, self.subject, self.durable, self.max_deliver, from_now=self.from_now)
            puller = Puller(connection(js), self.stream, self.durable, self._stop)
            await puller.start()
            self._puller = puller
        try:
            return await self._puller.fetch(batch, wait=wait)
        except PullFailed:
            await self.close()
            raise

    async def next_batch(self, js: JetStreamContext, batch: int, *, wait: float, **log_fields: Any) -> list[Msg]:
        """`fetch`, with nothing (empty) when nothing came within `wait`; a failure (NATS down,
        stream or consumer missing) is logged as `consume_retry` and waited out for a second."""
        try:
            return await self.fetch(js, batch, wait=wait)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except Exception as exc:  # noqa: BLE001 - keep trying: the caller loops
            log.warning("consume_retry", durable=self.durable, error=str(exc), **log_fields)
            await asyncio.sleep(1)
            return []

    async def close(self) -> None:
        """Hands back what was delivered and not fetched (see Puller.close)."""
        if self._puller is not None:
            puller, self._puller = self._puller, None
            await puller.close()


async def consume(
    js: JetStreamContext,
    *,
    stream: str,
    subject: Filter,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    batch: int = 100,
    max_deliver: int = MAX_DELIVER,
    batch_handler: BatchHandler | None = None,
    from_now: bool = False,
) -> None:
    """Pull from a durable consumer until `stop`; ack after the handler succeeded.

    Handlers must be idempotent: a message whose ack was lost is delivered again.
    A handler failure naks the message with the delay of its delivery count (nak_delay); at the last
    delivery (or at once for a PoisonMessage) it goes to the dead-letter stream.
    With a `batch_handler`, each fetched batch is handled at once; the messages it hands
    back, or all of them when it fails, then go through `handler` one by one.
    """
    pull = DurablePull(stream, subject, durable, max_deliver, stop, from_now=from_now)
    try:
        while not stop.is_set():
            msgs = await pull.next_batch(js, batch, wait=1)
            if not msgs:
                continue
            await _handle(js, msgs, durable, handler, batch_handler, max_deliver)
    finally:
        await pull.close()


async def _handle(
    js: JetStreamContext,
    msgs: list[Msg],
    durable: str,
    handler: Handler,
    batch_handler: BatchHandler | None,
    max_deliver: int,
) -> None:
    if batch_handler is not None:
        try:
            rest = await batch_handler(msgs)
        except Exception:
            log.exception("batch_handler_failed", durable=durable, size=len(msgs))
            rest = msgs
        handed_back = {id(m) for m in rest}
        for msg in msgs:
            if id(msg) not in handed_back:
                await msg.ack()
        msgs = rest
    for msg in msgs:
        try:
            await handler(msg)
        except PoisonMessage as exc:
            await dead_letter(js, msg, durable, f"poison: {exc}")
        except Exception as exc:
            delivered = msg.metadata.num_delivered
            if delivered >= max_deliver:
                await dead_letter(js, msg, durable, f"{type(exc).__name__}: {exc}")
                continue
            log.exception("event_handler_failed", durable=durable, subject=msg.subject, delivered=delivered)
            await msg.nak(delay=nak_delay(delivered))
        else:
            await msg.ack()
