"""The set of revoked sessions whose access tokens may still be unexpired.

Fed by NATS `sessions.revoked` so every replica drops a session at once. The feed counts as
healthy only while the NATS connection is up *and* every sessions replica heard from lately
sends heartbeats (staged through its outbox, so they prove its revocations were published).
While the feed is not healthy, each lookup asks Redis (where the sessions service writes
every revocation); with neither, the request is refused. After a reconnect the set is
re-synchronised from the sessions service.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import structlog
from prometheus_client import Counter

from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import nats_bus, redis_keys
from deelrx_kit.errors import DomainError
from gateway.redis_breaker import RedisBreaker, RedisUnavailable

log = structlog.get_logger("deelrx.gateway.revocation")

# Sessions replicas send a heartbeat every 5 s; three missed ones make the feed stale.
HEARTBEAT_STALE_AFTER_SECONDS = 15.0
# A heartbeat sent longer ago than this (a backlog draining) proves nothing about now.
HEARTBEAT_MAX_AGE_SECONDS = 30.0

FEED_STALE_REFUSALS = Counter(
    "deelrx_revocation_fail_closed_total", "Requests refused: revocation feed stale and Redis unreachable"
)


class RevocationSet:
    def __init__(
        self,
        redis: Any,
        ttl_seconds: float,
        *,
        stale_after: float = HEARTBEAT_STALE_AFTER_SECONDS,
        breaker: RedisBreaker | None = None,
    ) -> None:
        self._redis = redis
        self._breaker = breaker or RedisBreaker(redis.ping)
        self._ttl = ttl_seconds
        self._revoked: dict[str, float] = {}
        self._stale_after = stale_after
        # A replica silent this long is forgotten: tokens issued before its last revocations
        # have expired by then, and the sessions database refuses their refresh anyway.
        self._forget_after = ttl_seconds + stale_after
        self._heartbeats: dict[str, float] = {}  # sessions replica -> when its heartbeat arrived
        self.connected = False  # the gateway's own NATS subscription

    @property
    def feed_healthy(self) -> bool:
        return self.connected and self.heartbeat_fresh()

    @feed_healthy.setter
    def feed_healthy(self, value: bool) -> None:
        self.connected = value

    def heartbeat_fresh(self) -> bool:
        now = time.monotonic()
        for replica in [r for r, at in self._heartbeats.items() if now - at > self._forget_after]:
            del self._heartbeats[replica]
        return bool(self._heartbeats) and all(now - at <= self._stale_after for at in self._heartbeats.values())

    def on_heartbeat(self, replica: str, sent_at: float, received_at: float | None = None) -> None:
        """`sent_at` is the sender's wall clock; `received_at` (monotonic) defaults to now."""
        if abs(time.time() - sent_at) > HEARTBEAT_MAX_AGE_SECONDS:
            log.warning("stale_revocation_heartbeat", replica=replica, age_seconds=round(time.time() - sent_at))
            return
        self._heartbeats[replica] = time.monotonic() if received_at is None else received_at

    def add(self, session_ids: Iterable[str]) -> None:
        until = time.monotonic() + self._ttl
        for sid in session_ids:
            self._revoked[sid] = until
        if len(self._revoked) > 10_000:
            self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, until in self._revoked.items() if until <= now]:
            del self._revoked[sid]

    def known_revoked(self, session_id: str) -> bool:
        """Revoked according to the feed (no I/O)."""
        until = self._revoked.get(session_id)
        return until is not None and until > time.monotonic()

    async def is_revoked(self, session_id: str) -> bool:
        """The feed, and Redis while the feed is down. Callers that talk to Redis anyway ask
        it in the same round trip instead (see RateLimiter.hit)."""
        if self.known_revoked(session_id):
            return True
        if self.feed_healthy:
            return False
        try:
            return bool(await self._breaker.call(lambda: self._redis.exists(redis_keys.revoked_session(session_id))))
        except RedisUnavailable:
            # Neither feed nor Redis: the request cannot be decided. Refuse it as a temporary
            # failure (503, cookies kept), never as a revoked session (401, cookies cleared).
            FEED_STALE_REFUSALS.inc()
            log.warning("revocation_unknown", nats_connected=self.connected)
            raise DomainError(
                "unavailable", "Session state cannot be checked right now; retry shortly", retry_after_seconds=2
            ) from None

    async def on_message(self, data: bytes) -> None:
        message = nats_bus.decode(data, sessions_pb2.SessionRevoked, subject=nats_bus.SESSIONS_REVOKED_SUBJECT)
        if message is None:
            return
        if message.heartbeat_from:
            self.on_heartbeat(message.heartbeat_from, message.revoked_at.ToMicroseconds() / 1e6)
            return
        self.add(message.session_ids)
