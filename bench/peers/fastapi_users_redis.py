"""fastapi-users with its Redis strategy (opaque token looked up in Redis, then the user in SQLite)."""

import os
from typing import Any

import redis.asyncio
from fastapi_users.authentication import RedisStrategy

from bench.peers.fastapi_users_base import LIFETIME, build_app, cli

client = redis.asyncio.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/1"), decode_responses=True)


def strategy() -> RedisStrategy[Any, Any]:
    return RedisStrategy(client, lifetime_seconds=LIFETIME)


app = build_app(strategy)

if __name__ == "__main__":
    cli(strategy)
