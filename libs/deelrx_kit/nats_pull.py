"""Batches from a JetStream pull consumer, without a wait per message.

nats-py's `PullSubscription.fetch` awaits every message of a batch with `Subscription.next_msg`,
which makes a task, a timeout and a UUID per message: at thousands of events per second that was
the largest share of a consumer's CPU. A `Puller` subscribes one inbox with a callback that
appends deliveries to a list, and a fetch waits on one future per pull request.

The protocol is the one of nats-py: a `no_wait` request takes what the consumer has now; when
that is nothing, a request that lingers until `expires` waits for the first message. A fetch
returns as soon as something arrived; what the lingering request delivers afterwards is kept
for the next fetch (still unacknowledged, so nothing is lost if the process dies), and `close`
hands it back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

API_PREFIX = "$JS.API"
_HEARTBEAT = "100"
# 404 no messages, 408 request expired: the request is over, the consumer is fine.
_REQUEST_OVER = frozenset({"404", "408"})


class PullFailed(Exception):
    """The consumer cannot be pulled from (deleted, no JetStream, leadership lost ...):
    make it again before pulling more."""


def connection(js: JetStreamContext) -> NATS:
    """The client a JetStream context talks through (nats-py keeps it without an accessor)."""
    nc: NATS = js._nc
    return nc


class Puller:
    """Fetches batches from one durable pull consumer; `start` before, `close` after."""

    def __init__(self, nc: NATS, stream: str, durable: str, stop: asyncio.Event | None = None) -> None:
        self._nc = nc
        # Set when the owner stops: a waiting fetch ends at once instead of at its expiry.
        self._stop = stop
        self._next_subject = f"{API_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = ""
        self._sub: Subscription | None = None
        self._ready: list[Msg] = []
        self._request = 0
        self._wanted = 0
        self._done: asyncio.Future[str | None] | None = None
        # Lowered when the consumer has a smaller max_batch (an operator's setting).
        self._max_batch: int | None = None

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        # One reply subject per request, so a late status of an earlier request is not taken
        # for the end of the current one.
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._receive)

    async def close(self) -> None:
        """Unsubscribe; messages delivered and not fetched are handed back for redelivery now
        rather than after the ack wait."""
        ready, self._ready = self._ready, []
        for msg in ready:
            with contextlib.suppress(Exception):  # the connection may be gone: the ack wait brings them back
                await msg.nak()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def fetch(self, batch: int, wait: float) -> list[Msg]:
        """Up to `batch` messages: what the consumer has now, else the first to arrive within
        `wait` seconds with whatever came along with it. TimeoutError when nothing came."""
        if self._sub is None:
            raise RuntimeError("Puller.start() was not called")
        deadline = time.monotonic() + wait
        batch = min(batch, self._max_batch or batch)
        if len(self._ready) < batch:
            await self._ask(batch - len(self._ready), no_wait=True, wait=wait)
        if not self._ready:
            remaining = deadline - time.monotonic()
            if remaining > 0.01:
                await self._ask(batch, expires=remaining, wait=remaining, first=True)
        if not self._ready:
            raise TimeoutError
        taken, self._ready = self._ready[:batch], self._ready[batch:]
        return taken

    async def _ask(
        self, batch: int, *, wait: float, no_wait: bool = False, expires: float = 0.0, first: bool = False
    ) -> None:
        try:
            await self._request_once(batch, wait=wait, no_wait=no_wait, expires=expires, first=first)
        except PullFailed as exc:
            limit = _max_request_batch(str(exc))
            if limit is None or limit >= batch:
                raise
            self._max_batch = limit
            await self._request_once(limit, wait=wait, no_wait=no_wait, expires=expires, first=first)

    async def _request_once(self, batch: int, *, wait: float, no_wait: bool, expires: float, first: bool) -> None:
        self._request += 1
        body: dict[str, object] = {"batch": batch}
        if no_wait:  # without expires: the server ignores no_wait when a request has one
            body["no_wait"] = True
        else:
            # Expire a little before the client stops waiting, so no request outlives its fetch by much.
            body["expires"] = max(int(expires * 1e9) - 10_000_000, 1_000_000)
        self._wanted = len(self._ready) + (1 if first else batch)
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._done = done
        try:
            reply = f"{self._inbox}.{self._request}"
            await self._nc.publish(self._next_subject, json.dumps(body).encode(), reply=reply)
            if self._stop is None:
                await asyncio.wait((done,), timeout=wait)
            elif not self._stop.is_set():
                stopping = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait((done, stopping), timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
            if done.done() and (failure := done.result()) is not None:
                raise PullFailed(failure)
        finally:
            self._done = None

    async def _receive(self, msg: Msg) -> None:
        status = JetStreamContext.is_status_msg(msg)
        done = self._done
        if status is None:
            self._ready.append(msg)
            if done is not None and not done.done() and len(self._ready) >= self._wanted:
                done.set_result(None)
            return
        if status == _HEARTBEAT or done is None or done.done():
            return
        if msg.subject != f"{self._inbox}.{self._request}":
            return  # the end of an earlier request
        if status in _REQUEST_OVER:
            done.set_result(None)
        else:  # 409 (consumer deleted, leadership change ...), 503 (no such consumer)
            description = (msg.headers or {}).get("Description", "")
            done.set_result(f"{status} {description}".strip())


def _max_request_batch(failure: str) -> int | None:
    """N from "409 Exceeded MaxRequestBatch of N"."""
    head, _, limit = failure.rpartition(" of ")
    return int(limit) if "MaxRequestBatch" in head and limit.isdigit() and int(limit) > 0 else None
