"""The revocation feed: `sessions.revoked` on NATS (through the outbox, so never lost) and
`deelrx:revoked:<sid>` keys in Redis (named in `deelrx_kit.redis_keys`), which gateways ask when their NATS
feed is down."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import redis_keys
from deelrx_kit.ids import new_id
from deelrx_kit.nats_bus import SESSIONS_REVOKED_SUBJECT
from deelrx_kit.outbox import Outbox
from deelrx_kit.redis_url import AnyRedis
from deelrx_kit.timestamps import to_timestamp
from services.sessions.domain.records import RevocationNotice

log = structlog.get_logger(__name__)

# How much longer than an access token a revocation key lives (clock skew, in-flight requests).
REDIS_TTL_MARGIN_SECONDS = 60


class RedisNatsRevocations:
    def __init__(self, redis: AnyRedis, outbox: Outbox, access_ttl_seconds: int) -> None:
        self.redis = redis
        self.outbox = outbox
        self.ttl_seconds = access_ttl_seconds + REDIS_TTL_MARGIN_SECONDS
        # Set when a Redis write failed; the maintenance loop writes recent revocations again.
        self.behind = False

    async def stage(self, tx: AsyncSession, notice: RevocationNotice) -> None:
        message = sessions_pb2.SessionRevoked(
            session_ids=list(notice.session_ids),
            user_id=notice.user_id,
            revoked_at=to_timestamp(notice.revoked_at),
            reason=notice.reason,
        )
        await self.outbox.add(tx, SESSIONS_REVOKED_SUBJECT, message, new_id("evt"))

    async def stage_heartbeat(self, tx: AsyncSession, replica: str, now: datetime) -> None:
        """A heartbeat through the same outbox: gateways that receive it know every revocation
        staged before it was published (and call the feed stale when heartbeats stop)."""
        message = sessions_pb2.SessionRevoked(revoked_at=to_timestamp(now), reason="heartbeat", heartbeat_from=replica)
        await self.outbox.add(tx, SESSIONS_REVOKED_SUBJECT, message, new_id("evt"))

    async def announce(self, session_ids: Sequence[str]) -> None:
        self.outbox.notify()
        if not session_ids:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in session_ids:
                    pipe.set(redis_keys.revoked_session(sid), "1", ex=self.ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # SQL and the outbox already hold the revocation; only the fallback path lags.
            self.behind = True
            log.warning("revocation_redis_write_failed", error=str(exc), sessions=len(session_ids))
