"""Windows in Redis, shared by every detector replica and kept across restarts.

A window is a sorted set `<prefix>w:<rule>:<subject>` of observations (deterministic JSON,
so the same event adds the same member on any replica: ZADD NX counts it once), scored by
event time in milliseconds. One Lua call adds, slides (drops what is older than the newest
minus the window), caps the size and returns the window. A quiet period is a hash
`<prefix>q:<rule>:<subject>` {until, id}, claimed by one Lua call, so of two replicas that see
the same trigger only one raises the alert; it remembers which event raised it.

Keys expire a while after their window (wall clock), so idle subjects cost nothing.
When Redis does not answer, calls are retried until it does (or the detector stops): the
message stays unacknowledged and nothing is counted twice or lost.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from deelrx_kit import redis_keys
from services.detector.domain.rules import Observation
from services.detector.ports import Added, Claim

log = structlog.get_logger(__name__)

MAX_ENTRIES = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ADD = """
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(newest[2]) - tonumber(ARGV[3])))
local size = redis.call('ZCARD', KEYS[1])
if size > tonumber(ARGV[5]) then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, size - tonumber(ARGV[5]) - 1)
end
local counts = redis.call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {added, counts, redis.call('ZRANGE', KEYS[1], 0, -1)}
"""

CLAIM = """
local held = redis.call('HMGET', KEYS[1], 'until', 'id', 'event')
if held[1] and tonumber(ARGV[2]) < tonumber(held[1]) then
  return {0, held[2], held[3]}
end
redis.call('HSET', KEYS[1], 'until', ARGV[3], 'id', ARGV[1], 'event', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, ARGV[1], ARGV[5]}
"""


def _millis(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


class RedisWindowStore:
    def __init__(
        self, redis: Redis, *, prefix: str = redis_keys.DETECTOR_PREFIX, stop: asyncio.Event | None = None
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.stop = stop or asyncio.Event()
        self._add = redis.register_script(ADD)
        self._claim = redis.register_script(CLAIM)

    async def _retrying(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        backoff = 0.1
        while True:
            try:
                return await script(keys=keys, args=args)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self.stop.is_set():
                    raise
                log.warning("detector_redis_retry", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def add(self, key: str, obs: Observation, window_seconds: int) -> Added:
        ttl = max(window_seconds * 2, 60)
        added, counts, members = await self._retrying(
            self._add,
            [f"{self.prefix}w:{key}"],
            [obs.to_json(), _millis(obs.time), window_seconds * 1000, ttl, MAX_ENTRIES],
        )
        entries = [Observation.from_json(m.decode() if isinstance(m, bytes) else m) for m in members]
        return Added(entries, fresh=bool(added), counts=bool(counts))

    async def claim(self, key: str, alert_id: str, event_id: str, at: datetime, quiet_until: datetime) -> Claim:
        ttl_ms = max(_millis(quiet_until) - _millis(at), 1000) * 2
        new, holder, event = await self._retrying(
            self._claim,
            [f"{self.prefix}q:{key}"],
            [alert_id, _millis(at), _millis(quiet_until), ttl_ms, event_id],
        )
        return Claim(_text(holder), _text(event), new=bool(new))
