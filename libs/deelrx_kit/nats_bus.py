"""NATS JetStream: connection, the suite's streams, publishing and durable consumers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

log = structlog.get_logger("deelrx.nats")

# Subjects. Audit events go to `audit.events.<type>`; alerts to `security.alerts`.
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


# Dedup window: a relay retry within it is dropped by JetStream (Nats-Msg-Id).
DUPLICATE_WINDOW_SECONDS = 600

STREAMS = [
    StreamSpec("AUDIT", [f"{AUDIT_SUBJECT_PREFIX}>"], 30 * 86400),
    StreamSpec("ALERTS", [ALERTS_SUBJECT], 30 * 86400),
    StreamSpec("CONTROL", [SESSIONS_REVOKED_SUBJECT, TEAM_CHANGED_SUBJECT, f"{RBAC_CHANGED_PREFIX}>"], 86400),
]


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


async def ensure_streams(js: JetStreamContext) -> None:
    for spec in STREAMS:
        config = StreamConfig(
            name=spec.name,
            subjects=spec.subjects,
            storage=StorageType.FILE,
            max_age=spec.max_age_seconds,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Exists with other settings (an older version): bring it to this one.
            await js.update_stream(config)


Handler = Callable[[Msg], Awaitable[None]]


async def consume(
    js: JetStreamContext,
    *,
    stream: str,
    subject: str,
    durable: str,
    handler: Handler,
    stop: asyncio.Event,
    batch: int = 100,
) -> None:
    """Pull from a durable consumer until `stop`; ack after the handler succeeded.

    Handlers must be idempotent: a message whose ack was lost is delivered again.
    A handler failure naks the message so it is redelivered after a delay.
    """
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=30,
        max_ack_pending=10_000,
    )
    sub = None
    while not stop.is_set():
        try:
            if sub is None:
                sub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
            msgs = await sub.fetch(batch, timeout=1)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        except Exception as exc:  # noqa: BLE001 - NATS down or stream missing: keep trying
            log.warning("consume_retry", durable=durable, error=str(exc))
            await asyncio.sleep(1)
            continue
        for msg in msgs:
            try:
                await handler(msg)
            except Exception:
                log.exception("event_handler_failed", durable=durable, subject=msg.subject)
                await msg.nak(delay=2)
            else:
                await msg.ack()
