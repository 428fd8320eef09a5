"""The revocation feed is trusted only while sessions' heartbeats arrive; with a stale feed and
Redis down, a session is refused rather than assumed live (503 `unavailable`, not a logout)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.errors import DomainError
from deelrx_kit.timestamps import to_timestamp
from deploy.local.infra import free_port
from gateway.revocation import RevocationSet


def _down_redis() -> aioredis.Redis:
    return aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)


async def _refused(feed: RevocationSet, sid: str) -> bool:
    try:
        await feed.is_revoked(sid)
    except DomainError as exc:
        return exc.code == "unavailable" and bool(exc.retry_after_seconds)
    return False


def _heartbeat(replica: str, sent_at: float) -> bytes:
    from datetime import UTC, datetime

    message = sessions_pb2.SessionRevoked(
        reason="heartbeat", heartbeat_from=replica, revoked_at=to_timestamp(datetime.fromtimestamp(sent_at, UTC))
    )
    return message.SerializeToString()


async def test_stale_sessions_heartbeat_fails_closed_while_redis_is_down() -> None:
    redis = _down_redis()
    feed = RevocationSet(redis, ttl_seconds=300)
    feed.connected = True  # the gateway's NATS connection is fine; sessions' outbox leg is not
    try:
        assert await _refused(feed, "ses_1")  # no heartbeat yet: refuse
        await feed.on_message(_heartbeat("rep_a", time.time()))
        assert not await feed.is_revoked("ses_1")  # fresh heartbeat: the feed is trusted
        feed.on_heartbeat("rep_a", time.time(), received_at=time.monotonic() - 16)
        assert await _refused(feed, "ses_1")  # heartbeats stopped 16 s ago: refuse again
    finally:
        await redis.aclose()


async def test_every_recent_sessions_replica_must_be_fresh(redis_url: str) -> None:
    redis = _down_redis()
    feed = RevocationSet(redis, ttl_seconds=300)
    feed.connected = True
    try:
        feed.on_heartbeat("rep_a", time.time())
        feed.on_heartbeat("rep_b", time.time(), received_at=time.monotonic() - 20)
        assert not feed.feed_healthy  # rep_b's outbox may hold revocations
        feed.on_heartbeat("rep_b", time.time(), received_at=time.monotonic() - 400)
        assert feed.feed_healthy  # silent longer than a token lives: forgotten
        # A backlog draining: an old heartbeat proves nothing about now.
        stale = RevocationSet(redis, ttl_seconds=300)
        stale.connected = True
        await stale.on_message(_heartbeat("rep_c", time.time() - 120))
        assert not stale.feed_healthy
        feed.connected = False
        assert not feed.feed_healthy
    finally:
        await redis.aclose()


async def test_revocations_still_apply_from_redis_when_the_feed_is_stale(redis_url: str) -> None:
    redis = aioredis.from_url(redis_url)
    feed = RevocationSet(redis, ttl_seconds=300)
    feed.connected = True
    sid = f"ses_{time.time_ns()}"
    try:
        assert not await feed.is_revoked(sid)
        await redis.set(f"deelrx:revoked:{sid}", 1, ex=60)
        assert await feed.is_revoked(sid)
    finally:
        await redis.aclose()
