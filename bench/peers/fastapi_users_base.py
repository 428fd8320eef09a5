"""What the two fastapi-users peers share: the user table on SQLite (SQLAlchemy adapter), the
user manager, the app with /users/me behind a cookie and a Bearer transport, and the seeding
step run once before uvicorn starts its workers:

    python -m bench.peers.<peer> init <count> <tokens-dir>

creates the table, inserts `count` users and writes one credential per user, issued by the
peer's own strategy, as wrk header lines (`bearer.txt`, `cookie.txt`).

Configuration by environment: PEER_DATABASE (SQLite file), PEER_SECRET, PEER_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, CookieTransport, Strategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users.password import PasswordHelper
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE = os.environ.get("PEER_DATABASE", "peer.db")
SECRET = os.environ.get("PEER_SECRET", "bench-peer-secret-0123456789abcdef")
COOKIE_NAME = "fastapiusersauth"
LIFETIME = 3600


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


engine = create_async_engine(f"sqlite+aiosqlite:///{DATABASE}")
session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def get_session() -> AsyncGenerator[AsyncSession, None]:
    async with session_maker() as session:
        yield session


async def get_user_db(session: AsyncSession = Depends(get_session)) -> AsyncGenerator[Any, None]:
    yield SQLAlchemyUserDatabase(session, User)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(user_db: Any = Depends(get_user_db)) -> AsyncGenerator[UserManager, None]:
    yield UserManager(user_db)


def build_app(strategy: Callable[[], Strategy[Any, Any]]) -> FastAPI:
    backends = [
        AuthenticationBackend(
            name="cookie",
            transport=CookieTransport(cookie_name=COOKIE_NAME, cookie_max_age=LIFETIME, cookie_secure=False),
            get_strategy=strategy,
        ),
        AuthenticationBackend(name="bearer", transport=BearerTransport(tokenUrl="auth/login"), get_strategy=strategy),
    ]
    users = FastAPIUsers[User, uuid.UUID](get_user_manager, backends)
    app = FastAPI()
    app.include_router(users.get_auth_router(backends[1]), prefix="/auth")
    app.include_router(users.get_users_router(UserRead, UserUpdate), prefix="/users")
    return app


async def _seed(count: int, out: Path, strategy: Strategy[Any, Any]) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    hashed = PasswordHelper().hash("bench mark password 2026")  # one hash: seeding is not measured
    async with session_maker() as session:
        users = [
            User(email=f"peer{i}@example.com", hashed_password=hashed, is_active=True, is_verified=True)
            for i in range(count)
        ]
        session.add_all(users)
        await session.commit()
    tokens = [await strategy.write_token(u) for u in users]
    await engine.dispose()
    _write_tokens(out, tokens)


def _write_tokens(out: Path, tokens: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bearer.txt").write_text("".join(f"Authorization: Bearer {t}\n" for t in tokens))
    (out / "cookie.txt").write_text("".join(f"Cookie: {COOKIE_NAME}={t}\n" for t in tokens))


def cli(strategy: Callable[[], Strategy[Any, Any]]) -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "init":
        asyncio.run(_seed(int(sys.argv[2]), Path(sys.argv[3]), strategy()))
    else:
        raise SystemExit("usage: python -m bench.peers.<peer> init <count> <tokens-dir>")
