"""The set of revoked sessions whose access tokens may still be unexpired.

Fed by NATS `sessions.revoked` so every replica drops a session at once. While the feed
is down, each lookup asks Redis (where the sessions service writes every revocation);
after a reconnect the set is re-synchronised from the sessions service.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

import structlog
from redis.asyncio import Redis

from deelrx.sessions.v1 import sessions_pb2

log = structlog.get_logger("deelrx.gateway.revocation")

REDIS_KEY = "deelrx:revoked:{}"


class RevocationSet:
    def __init__(self, redis: Redis, ttl_seconds: float) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._revoked: dict[str, float] = {}
        self.feed_healthy = False

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
            return bool(await self._redis.exists(REDIS_KEY.format(session_id)))
        except Exception as exc:  # noqa: BLE001
            # Neither feed nor Redis: refuse rather than honour a possibly revoked token.
            log.error("revocation_unknown", error=str(exc))
            return True

    async def on_message(self, data: bytes) -> None:
        try:
            message = sessions_pb2.SessionRevoked.FromString(data)
        except Exception:  # noqa: BLE001
            log.warning("bad_revocation_message")
            return
        self.add(message.session_ids)

    async def resync(self, fetch_recent: Callable[[], Awaitable[list[str]]]) -> None:
        self.add(await fetch_recent())
