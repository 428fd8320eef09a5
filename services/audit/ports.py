"""The narrow ports the audit use cases depend on: the SQL stores (events and chain heads,
alerts and their triage, checkpoints, retention, partition leases) and the outbound live announcer.
Every store call runs inside the caller's transaction (`session`). The SQL adapters are modules
of functions (services/audit/adapters/*_sql.py, sql.py), which satisfy these protocols;
bootstrap (main.py) wires them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.domain.alerts import AlertRecord, AlertState
from services.audit.domain.checkpoints import Checkpoint
from services.audit.domain.events import ChainedEvent, EventRecord
from services.audit.domain.months import MonthRange
from services.audit.domain.paging import Cursor

LiveItem = EventRecord | AlertRecord


class EventStore(Protocol):
    """Stored events and the head of every chain."""

    async def chain_head(self, session: AsyncSession, chain_key: str) -> tuple[int, str] | None: ...
    async def lock_heads(self, session: AsyncSession, chain_keys: Collection[str]) -> dict[str, tuple[int, str]]: ...
    async def set_heads(
        self, session: AsyncSession, moved: Sequence[ChainedEvent], created: Sequence[ChainedEvent]
    ) -> None: ...
    async def existing_event_ids(self, session: AsyncSession, ids: Collection[str]) -> set[str]: ...
    async def insert_events(self, session: AsyncSession, stored: Sequence[ChainedEvent]) -> None: ...
    async def query_events(
        self,
        session: AsyncSession,
        *,
        team_id: str | None,
        actor_user_id: str | None,
        type_prefixes: Sequence[str] = ...,
        types: Collection[str] = ...,
        since: datetime | None = ...,
        until: datetime | None = ...,
        after: Cursor | None = ...,
        limit: int,
        newest_first: bool = ...,
    ) -> list[ChainedEvent]: ...
    async def chain_events(
        self, session: AsyncSession, chain_key: str, *, after_seq: int, up_to_seq: int, limit: int
    ) -> list[ChainedEvent]: ...


class AlertStore(Protocol):
    async def alert_exists(self, session: AsyncSession, alert_id: str) -> bool: ...
    async def insert_alert(self, session: AsyncSession, alert: AlertRecord, stored_at: datetime) -> None: ...
    async def get_alert(self, session: AsyncSession, alert_id: str) -> AlertRecord | None: ...
    async def query_alerts(
        self,
        session: AsyncSession,
        *,
        team_id: str,
        member_user_ids: Collection[str],
        after: Cursor | None,
        limit: int,
        newest_first: bool = ...,
    ) -> list[AlertRecord]: ...


class TriageStore(Protocol):
    """Each team's status and note for an alert."""

    async def states_for(
        self, session: AsyncSession, team_id: str, alert_ids: Collection[str]
    ) -> dict[str, AlertState]: ...
    async def set_state(self, session: AsyncSession, alert_id: str, team_id: str, state: AlertState) -> None: ...


class CheckpointStore(Protocol):
    """Signed chain heads, and where a chain starts after archiving."""

    async def base_of(self, session: AsyncSession, chain_key: str) -> tuple[int, str] | None: ...
    async def archived_until(self, session: AsyncSession, chain_keys: Collection[str]) -> dict[str, datetime]: ...
    async def for_chain(self, session: AsyncSession, chain_key: str) -> list[Checkpoint]: ...
    async def add(self, session: AsyncSession, cp: Checkpoint) -> None: ...
    async def chains_moved_since_checkpoint(self, session: AsyncSession, limit: int) -> list[str]: ...


class RetentionStore(Protocol):
    """What retention reads and removes besides the chains and checkpoints."""

    async def chains_stored_before(self, session: AsyncSession, before: datetime, limit: int) -> list[str]: ...
    async def first_kept_seq(
        self, session: AsyncSession, chain_key: str, after_seq: int, before: datetime
    ) -> int | None: ...
    async def drop_archived(
        self,
        session: AsyncSession,
        chain_key: str,
        up_to_seq: int,
        head_hash: str,
        archived_at: datetime,
        archive: str,
        *,
        archived_until: datetime | None,
    ) -> None:
        """Delete the chain's events (and their ids) up to `up_to_seq`; the chain then starts at
        (up_to_seq, head_hash), and its events no newer than `archived_until` are refused."""


class LeaseStore(Protocol):
    """Replica heartbeats, the stream partitions' leases and the monthly table partitions."""

    async def heartbeat(self, session: AsyncSession, replica_id: str, now: datetime) -> None: ...
    async def live_replicas(self, session: AsyncSession, since: datetime) -> int: ...
    async def forget_replicas(self, session: AsyncSession, before: datetime) -> None: ...
    async def leases(self, session: AsyncSession) -> dict[int, tuple[str, datetime]]: ...
    async def claim(
        self, session: AsyncSession, partition: int, owner: str, now: datetime, until: datetime
    ) -> bool: ...
    async def release(self, session: AsyncSession, partitions: Collection[int], owner: str) -> None: ...
    async def hold(
        self, session: AsyncSession, partitions: Collection[int], owner: str, now: datetime
    ) -> frozenset[int]: ...
    async def ensure_month_partitions(self, session: AsyncSession, months: Collection[MonthRange]) -> list[str]: ...


class LiveAnnouncer(Protocol):
    """Where newly stored items go: this replica's live hub, or every replica's."""

    def __call__(self, items: Sequence[LiveItem]) -> None: ...


class PartitionConsumers(Protocol):
    """The stream consumers of the partitions this replica holds."""

    @property
    def running(self) -> frozenset[int]: ...

    async def start(self, partition: int) -> None: ...

    async def stop(self, partition: int) -> None: ...

    async def stop_all(self) -> None: ...
