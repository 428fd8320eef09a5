"""Change revisions in Redis: what lets every gateway replica know, in the round trip it makes
anyway (rate limit + revocation, gateway/ratelimit.py), that a user's or a team's data changed.

Each successful (2xx/3xx) authenticated write through any replica sets the caller's revision
and, under `/v1/teams/{tid}`, the team's, to a new unique stamp before the answer leaves the
gateway. A cached answer remembers the stamps it was loaded under and is used only while they
are unchanged (gateway/profile_cache.py), so the next request after a write, at any replica,
reads fresh data. Stamps are unique values rather than counters, and expire well after any
cache entry can live (REVISION_TTL_SECONDS > profile_cache.ENTRY_TTL_SECONDS), so a stamp can
never come back to a value an old entry remembers.
"""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deelrx_kit import redis_keys
from deelrx_kit.redis_url import AnyRedis
from gateway.exchange import find_exchange
from gateway.redis_breaker import RedisBreaker

log = structlog.get_logger("deelrx.gateway.revisions")

REVISION_TTL_SECONDS = 3600
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Routes that take unsafe methods but change nothing: forward auth judging a proxied POST, and
# the authorization question asked by POST.
READ_ONLY_ROUTES = frozenset({"/v1/auth/verify/{original_path:path}", "/v1/authz/check"})


def user_key(user_id: str) -> str:
    return f"{redis_keys.CHANGE_REVISION_PREFIX}{{u:{user_id}}}"


def team_key(team_id: str) -> str:
    return f"{redis_keys.CHANGE_REVISION_PREFIX}{{t:{team_id}}}"


def keys_for(user_id: str, team_id: str | None) -> tuple[str, ...]:
    """The caller's revisions, its user's then its team's: what a write bumps and /v1/auth/me
    watches."""
    return (user_key(user_id), team_key(team_id)) if team_id else (user_key(user_id),)


def role_keys(user_id: str, team_id: str | None) -> tuple[str, ...]:
    """What forward auth watches: the role cache's (gateway/roles.py), so nothing without a team."""
    return keys_for(user_id, team_id) if team_id else ()


def new_stamp() -> str:
    return secrets.token_hex(8)


def queue_read(pipe: Any, key: str) -> None:
    """Two commands for the caller's pipeline (still one round trip): create the stamp when the
    key is missing, then read it. Both name the same key, so they go to the same cluster node."""
    pipe.execute_command("SET", key, new_stamp(), "NX", "EX", REVISION_TTL_SECONDS)
    pipe.execute_command("GET", key)


async def bump(redis: AnyRedis, breaker: RedisBreaker, user_id: str, team_id: str | None) -> bool:
    """New stamps for the user (and team); False when Redis could not be told (the NATS
    notices of the change then carry it to the other replicas)."""
    stamp = new_stamp()

    async def write() -> Any:
        pipe = redis.pipeline(transaction=False)
        for key in keys_for(user_id, team_id):
            pipe.execute_command("SET", key, stamp, "EX", REVISION_TTL_SECONDS)
        return await pipe.execute()

    try:
        await breaker.call(write)
    except Exception as exc:  # noqa: BLE001 - RedisUnavailable or a Redis error: the write itself succeeded
        log.warning("revision_bump_failed", error=str(exc))
        return False
    return True


class BumpRevisionsOnWrite:
    """ASGI middleware around the routes: after a successful authenticated write, and before
    its answer starts, bump the caller's (and the path's team's) revision."""

    def __init__(self, app: ASGIApp, gateway: Any) -> None:
        self.app = app
        self.gw = gateway  # gateway.state.Gateway (its redis and the limiter's breaker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return

        async def bumping_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                exchange = find_exchange(HTTPConnection(scope))
                auth = exchange.auth if exchange is not None else None
                route = getattr(scope.get("route"), "path", None)
                if auth is not None and route not in READ_ONLY_ROUTES:
                    tid = scope.get("path_params", {}).get("tid")
                    team_id = tid if isinstance(tid, str) else None
                    await bump(self.gw.redis, self.gw.limiter.breaker, auth.user_id, team_id)
            await send(message)

        await self.app(scope, receive, bumping_send)
