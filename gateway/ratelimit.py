"""Rate limits in Redis: a sliding-window counter, one round trip per request.

The estimate is `previous window * (share of it still inside the rolling minute) +
current window`, which tracks a true rolling minute closely with two small keys per
subject instead of a log of every request. Refused requests are not counted. Given a
session id, the same script also says whether the session is revoked, so that check
costs no extra round trip.
Headers follow draft-ietf-httpapi-ratelimit-headers-09 (`RateLimit-Policy`, `RateLimit`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("deelrx.gateway.ratelimit")
RATE_LIMIT_UNAVAILABLE = Counter("deelrx_rate_limit_unavailable_total", "Requests not limited: Redis unreachable")

PLAN_LIMITS = {"starter": 100, "professional": 1_000, "enterprise": 10_000}
WINDOW_SECONDS = 60

_SCRIPT = """
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {-1, 0, 0, 0}
end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local start = now - (now % window)
local cur_key = KEYS[1] .. ':' .. start
local prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (start - window)) or '0')
local cur = tonumber(redis.call('GET', cur_key) or '0')
local elapsed = now - start
local used = prev * (window - elapsed) / window + cur
if used + 1 > limit then
  local wait
  if cur + 1 > limit then
    wait = (window - elapsed) + window * (1 - (limit - 1) / cur)
  else
    wait = (window - elapsed) - (limit - 1 - cur) * window / prev
  end
  return {0, 0, math.ceil(math.max(wait, 1) / 1000), math.ceil((window - elapsed) / 1000)}
end
cur = redis.call('INCR', cur_key)
redis.call('PEXPIRE', cur_key, window * 2)
local remaining = math.floor(limit - (prev * (window - elapsed) / window + cur))
return {1, math.max(remaining, 0), 0, math.ceil((window - elapsed) / 1000)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy: str
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int
    # The session named by `revoked_key` is revoked (checked in the same round trip).
    revoked: bool = False

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={self.reset_seconds}',
        }


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str = "deelrx:rl") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_SCRIPT)

    async def hit(self, policy: str, subject: str, limit: int, revoked_key: str | None = None) -> Decision | None:
        """Count one request; None when Redis cannot answer (the request is not limited then:
        lockouts live in identity's database, and revocation has its own fallback)."""
        now_ms = int(time.time() * 1000)
        keys = [f"{self._prefix}:{policy}:{subject}"] + ([revoked_key] if revoked_key else [])
        try:
            allowed, remaining, retry_after, reset = await self._script(
                keys=keys, args=[limit, WINDOW_SECONDS * 1000, now_ms]
            )
        except RedisError as exc:
            RATE_LIMIT_UNAVAILABLE.inc()
            log.warning("rate_limit_unavailable", error=str(exc))
            return None
        if allowed == -1:
            return Decision(True, policy, limit, 0, 0, 0, revoked=True)
        return Decision(bool(allowed), policy, limit, int(remaining), int(reset), int(retry_after))
