"""In-memory fakes of the ports every service's use cases share: transactions that roll back
their fakes' state when the block raises (as the SQL adapters' transactions do), the outbox,
and a sessionmaker over those transactions."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx.audit.v1 import audit_pb2

TX = cast(AsyncSession, object())  # fakes never look at the transaction handle


class Rollback:
    """State a fake transaction snapshots and restores (attributes starting with `_` are not
    state: counters a test reads across transactions)."""

    def snapshot(self) -> Any:
        return copy.deepcopy({k: v for k, v in vars(self).items() if not k.startswith("_")})

    def restore(self, state: Any) -> None:
        vars(self).update(state)


class FakeTransactions:
    def __init__(self, *parts: Rollback) -> None:
        self.parts = parts
        self.writes = 0
        self.reads = 0

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[AsyncSession]:
        saved = [p.snapshot() for p in self.parts]
        try:
            yield TX
        except BaseException:
            for part, state in zip(self.parts, saved, strict=True):
                part.restore(state)
            raise

    def writing(self) -> Any:
        self.writes += 1
        return self._unit()

    def reading(self) -> Any:
        self.reads += 1
        return self._unit()


class FakeOutbox(Rollback):
    def __init__(self) -> None:
        self.messages: list[tuple[str, Message]] = []
        self._notified = 0

    async def add(self, session: AsyncSession, subject: str, message: Message, msg_id: str) -> None:
        self.messages.append((subject, message))

    def notify(self) -> None:
        self._notified += 1

    def events(self, type: str | None = None) -> list[audit_pb2.AuditEvent]:
        found = [m for _, m in self.messages if isinstance(m, audit_pb2.AuditEvent)]
        return [e for e in found if type is None or e.type == type]


class _FakeSession:
    """What deelrx_kit.db's `transaction` and `reading` ask of a session, nothing more."""

    def __init__(self, transactions: FakeTransactions) -> None:
        self._transactions = transactions

    async def __aenter__(self) -> _FakeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def begin(self) -> Any:
        return self._transactions.writing()

    async def connection(self, execution_options: Any = None) -> None:
        self._transactions.reads += 1  # `reading` opens the read-only connection here


class FakeSessionmaker:
    """For use cases that take a sessionmaker and go through `transaction(sessionmaker)` and
    `reading(sessionmaker)` (audit): a `transaction` block that raises rolls the fakes back."""

    def __init__(self, *parts: Rollback) -> None:
        self.transactions = FakeTransactions(*parts)

    def __call__(self) -> _FakeSession:
        return _FakeSession(self.transactions)

    def as_sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return cast(async_sessionmaker[AsyncSession], self)
