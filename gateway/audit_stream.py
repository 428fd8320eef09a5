"""Server-Sent Events from the audit service's live stream.

Each item becomes `event: audit` or `event: alert` with `id:` = its position, so a browser's
EventSource resumes after the last item it saw (`Last-Event-ID`). A comment line is sent
every `heartbeat_seconds` when nothing else was, which keeps proxies from closing an idle
connection; at each heartbeat the caller's right to watch is asked again (revoked session,
removed member or lost permission end the stream). The stream also ends when the access
token that opened it expires: the client reconnects with a renewed one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import grpc_errors

RETRY_MILLIS = 3000
QUEUE_SIZE = 256


def sse_frame(event: str, data: dict[str, Any], event_id: str = "") -> bytes:
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    # Compact JSON holds no raw newline, so one data line carries the whole item.
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


class SseStream:
    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall,
        *,
        render_event: Callable[[audit_pb2.AuditEvent], dict[str, Any]],
        render_alert: Callable[[audit_pb2.Alert], dict[str, Any]],
        heartbeat_seconds: float,
        ends_at: float,
        still_allowed: Callable[[], Awaitable[bool]],
    ) -> None:
        self.call = call
        self.render_event = render_event
        self.render_alert = render_alert
        self.heartbeat_seconds = heartbeat_seconds
        self.ends_at = ends_at
        self.still_allowed = still_allowed

    async def opened(self) -> None:
        """Wait until the audit service subscribed; raise its refusal as a DomainError."""
        try:
            await self.call.initial_metadata()
            if self.call.done():
                await self.call.read()  # raises the service's error
        except grpc.aio.AioRpcError as exc:
            raise grpc_errors.decode(exc) from None

    async def _pump(self, queue: asyncio.Queue[audit_pb2.StreamItem | None]) -> None:
        try:
            async for item in self.call:
                await queue.put(item)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            await queue.put(None)

    def _frame(self, item: audit_pb2.StreamItem) -> bytes:
        if item.WhichOneof("item") == "alert":
            return sse_frame("alert", self.render_alert(item.alert), item.position)
        return sse_frame("audit", self.render_event(item.event), item.position)

    async def body(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[audit_pb2.StreamItem | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        pump = asyncio.create_task(self._pump(queue))
        try:
            yield f"retry: {RETRY_MILLIS}\n: connected\n\n".encode()
            while True:
                remaining = self.ends_at - time.time()
                if remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=min(self.heartbeat_seconds, remaining))
                except TimeoutError:
                    if not await self.still_allowed():
                        return
                    yield b": heartbeat\n\n"
                    continue
                if item is None:
                    return  # the audit service ended the stream (restart, fell behind): reconnect
                yield self._frame(item)
        finally:
            self.call.cancel()
            pump.cancel()
