"""The `Database` port over the kit's SQLAlchemy session factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from deelrx_kit.db import reading, single_read, transaction
from services.identity.ports import Tx


class SqlDatabase:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        bind = sessionmaker.kw["bind"]
        assert isinstance(bind, AsyncEngine)
        self.engine = bind

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with transaction(self.sessionmaker) as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Tx]:
        async with reading(self.sessionmaker) as session:
            yield session

    @asynccontextmanager
    async def lookup(self) -> AsyncIterator[Tx]:
        async with single_read(self.engine) as conn:
            yield conn
