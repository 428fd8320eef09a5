"""fastapi-users with its JWT strategy (HS256, user loaded from SQLite on every request)."""

from typing import Any

from fastapi_users.authentication import JWTStrategy

from bench.peers.fastapi_users_base import LIFETIME, SECRET, build_app, cli


def strategy() -> JWTStrategy[Any, Any]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=LIFETIME)


app = build_app(strategy)

if __name__ == "__main__":
    cli(strategy)
