"""In-memory fakes of the audit ports (services/audit/ports.py), and the use cases wired over
them (no database, no NATS).

The stores keep what the SQL adapters keep and refuse what their constraints refuse (an event
id or chain position stored twice, a chain started twice, a checkpoint signed twice at one
seq) with IntegrityError, so the use cases' idempotence is exercised, not assumed. A
transaction whose block raises restores every fake (tests/unit/fake_ports.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.audit_partitions import PARTITIONS
from deelrx_kit.clock import FrozenClock
from services.audit.app import AuditLog
from services.audit.archive_sink import ArchiveFile, ArchiveStoreError
from services.audit.checkpoints import ChainCheckpoints, CheckpointKey
from services.audit.domain.alerts import AlertRecord, AlertState
from services.audit.domain.checkpoints import Checkpoint
from services.audit.domain.events import ChainedEvent
from services.audit.domain.months import MonthRange
from services.audit.domain.paging import Cursor
from services.audit.live_hub import LiveHub, LiveItem
from services.audit.retention import Archiver
from services.audit.stream_partitions import StreamPartitions
from services.audit.triage import AuditActions
from tests.unit.fake_ports import FakeOutbox, FakeSessionmaker, Rollback

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _conflict(what: str) -> IntegrityError:
    return IntegrityError(what, None, Exception(what))


def _after(time: datetime, item_id: str, cursor: Cursor, newest_first: bool) -> bool:
    if newest_first:
        return (time, item_id) < (cursor.time, cursor.id)
    return (time, item_id) > (cursor.time, cursor.id)


class FakeEvents(Rollback):
    def __init__(self) -> None:
        self.heads: dict[str, tuple[int, str]] = {}
        self.rows: dict[tuple[str, int], ChainedEvent] = {}  # (chain key, seq)
        self.ids: set[str] = set()

    async def chain_head(self, session: AsyncSession, chain_key: str) -> tuple[int, str] | None:
        return self.heads.get(chain_key)

    async def lock_heads(self, session: AsyncSession, chain_keys: Collection[str]) -> dict[str, tuple[int, str]]:
        return {k: self.heads[k] for k in chain_keys if k in self.heads}

    async def set_heads(
        self, session: AsyncSession, moved: Sequence[ChainedEvent], created: Sequence[ChainedEvent]
    ) -> None:
        for c in created:
            if c.chain_key in self.heads:
                raise _conflict(f"chain {c.chain_key} started twice")
            self.heads[c.chain_key] = (c.seq, c.hash)
        for c in moved:
            self.heads[c.chain_key] = (c.seq, c.hash)

    async def existing_event_ids(self, session: AsyncSession, ids: Collection[str]) -> set[str]:
        return self.ids & set(ids)

    async def insert_events(self, session: AsyncSession, stored: Sequence[ChainedEvent]) -> None:
        for c in stored:
            if c.event.id in self.ids or (c.chain_key, c.seq) in self.rows:
                raise _conflict(f"event {c.event.id} stored twice")
            self.ids.add(c.event.id)
            self.rows[(c.chain_key, c.seq)] = c

    async def query_events(
        self,
        session: AsyncSession,
        *,
        team_id: str | None,
        actor_user_id: str | None,
        type_prefixes: Sequence[str] = (),
        types: Collection[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        after: Cursor | None = None,
        limit: int,
        newest_first: bool = True,
    ) -> list[ChainedEvent]:
        def matches(c: ChainedEvent) -> bool:
            e = c.event
            return (
                (team_id is None or e.team_id == team_id)
                and (actor_user_id is None or e.actor_user_id == actor_user_id)
                and (not type_prefixes or e.type.startswith(tuple(type_prefixes)))
                and (not types or any(e.type.startswith(t[:-1]) if t.endswith(".*") else e.type == t for t in types))
                and (since is None or e.time >= since)
                and (until is None or e.time < until)
                and (after is None or _after(e.time, e.id, after, newest_first))
            )

        found = sorted(
            (c for c in self.rows.values() if matches(c)),
            key=lambda c: (c.event.time, c.event.id),
            reverse=newest_first,
        )
        return found[:limit]

    async def chain_events(
        self, session: AsyncSession, chain_key: str, *, after_seq: int, up_to_seq: int, limit: int
    ) -> list[ChainedEvent]:
        found = sorted(
            (c for (key, seq), c in self.rows.items() if key == chain_key and after_seq < seq <= up_to_seq),
            key=lambda c: c.seq,
        )
        return found[:limit]

    def chain(self, chain_key: str) -> list[ChainedEvent]:
        return sorted((c for (key, _), c in self.rows.items() if key == chain_key), key=lambda c: c.seq)


class FakeAlerts(Rollback):
    def __init__(self) -> None:
        self.alerts: dict[str, AlertRecord] = {}

    async def alert_exists(self, session: AsyncSession, alert_id: str) -> bool:
        return alert_id in self.alerts

    async def insert_alert(self, session: AsyncSession, alert: AlertRecord, stored_at: datetime) -> None:
        if alert.id in self.alerts:
            raise _conflict(f"alert {alert.id} stored twice")
        self.alerts[alert.id] = alert

    async def get_alert(self, session: AsyncSession, alert_id: str) -> AlertRecord | None:
        return self.alerts.get(alert_id)

    async def query_alerts(
        self,
        session: AsyncSession,
        *,
        team_id: str,
        member_user_ids: Collection[str],
        after: Cursor | None,
        limit: int,
        newest_first: bool = True,
    ) -> list[AlertRecord]:
        members = set(member_user_ids)

        def visible(a: AlertRecord) -> bool:
            return a.team_id == team_id or (not a.team_id and bool(members.intersection(a.user_ids)))

        found = sorted(
            (
                a
                for a in self.alerts.values()
                if visible(a) and (after is None or _after(a.time, a.id, after, newest_first))
            ),
            key=lambda a: (a.time, a.id),
            reverse=newest_first,
        )
        return found[:limit]


class FakeTriage(Rollback):
    def __init__(self) -> None:
        self.states: dict[tuple[str, str], AlertState] = {}  # (alert id, team id)

    async def states_for(
        self, session: AsyncSession, team_id: str, alert_ids: Collection[str]
    ) -> dict[str, AlertState]:
        return {a: self.states[(a, team_id)] for a in alert_ids if (a, team_id) in self.states}

    async def set_state(self, session: AsyncSession, alert_id: str, team_id: str, state: AlertState) -> None:
        self.states[(alert_id, team_id)] = state


class FakeCheckpoints(Rollback):
    def __init__(self, events: FakeEvents) -> None:
        self.signed: dict[str, list[Checkpoint]] = {}
        self.bases: dict[str, tuple[int, str]] = {}
        self.until: dict[str, datetime] = {}  # archived_until per chain
        self._events = events  # the chain heads, for "moved since its checkpoint"

    async def base_of(self, session: AsyncSession, chain_key: str) -> tuple[int, str] | None:
        return self.bases.get(chain_key)

    async def archived_until(self, session: AsyncSession, chain_keys: Collection[str]) -> dict[str, datetime]:
        return {k: self.until[k] for k in chain_keys if k in self.until}

    async def for_chain(self, session: AsyncSession, chain_key: str) -> list[Checkpoint]:
        return sorted(self.signed.get(chain_key, []), key=lambda c: c.seq)

    async def add(self, session: AsyncSession, cp: Checkpoint) -> None:
        chain = self.signed.setdefault(cp.chain_key, [])
        if any(c.seq == cp.seq for c in chain):
            raise _conflict(f"checkpoint {cp.chain_key}@{cp.seq} signed twice")
        chain.append(cp)

    async def chains_moved_since_checkpoint(self, session: AsyncSession, limit: int) -> list[str]:
        def last(key: str) -> int:
            return max((c.seq for c in self.signed.get(key, [])), default=0)

        return [k for k, (seq, _) in sorted(self._events.heads.items()) if seq > last(k)][:limit]


class FakeRetention:
    """Retention's reads and removals over the fake events and checkpoints (no state of its own:
    what it changes is theirs, and rolls back with them)."""

    def __init__(self, events: FakeEvents, checkpoints: FakeCheckpoints) -> None:
        self._events = events
        self._checkpoints = checkpoints

    async def chains_stored_before(self, session: AsyncSession, before: datetime, limit: int) -> list[str]:
        return sorted({key for (key, _), c in self._events.rows.items() if c.stored_at < before})[:limit]

    async def first_kept_seq(
        self, session: AsyncSession, chain_key: str, after_seq: int, before: datetime
    ) -> int | None:
        kept = [c.seq for c in self._events.chain(chain_key) if c.seq > after_seq and c.stored_at >= before]
        return min(kept, default=None)

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
        for c in self._events.chain(chain_key):
            if c.seq <= up_to_seq:
                del self._events.rows[(chain_key, c.seq)]
                self._events.ids.discard(c.event.id)
        self._checkpoints.bases[chain_key] = (up_to_seq, head_hash)
        before = self._checkpoints.until.get(chain_key)
        if before is not None and (archived_until is None or before > archived_until):
            archived_until = before
        if archived_until is not None:
            self._checkpoints.until[chain_key] = archived_until


class FakeArchiveSink:
    """Keeps each stored archive's bytes; `fail` makes the next stores fail as an unreachable bucket."""

    def __init__(self, spool: Path) -> None:
        self._spool = spool
        self.stored: dict[str, bytes] = {}
        self.fail = False

    @property
    def spool(self) -> Path:
        self._spool.mkdir(parents=True, exist_ok=True)
        return self._spool

    async def store(self, archive: ArchiveFile) -> str:
        if self.fail:
            raise ArchiveStoreError("bucket unreachable")
        data = archive.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != archive.sha256:
            raise ArchiveStoreError("stored copy differs")
        archive.path.unlink()
        self.stored[archive.name] = data
        return f"mem://archive/{archive.name}"

    def lines(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in gzip.decompress(self.stored[name]).decode().splitlines()]


class FakeLeases(Rollback):
    """Replica heartbeats and partition leases, shared by the replicas of a test."""

    def __init__(self) -> None:
        self.seen: dict[str, datetime] = {}
        self.held: dict[int, tuple[str, datetime]] = {}  # partition -> (owner, expires)

    async def heartbeat(self, session: AsyncSession, replica_id: str, now: datetime) -> None:
        self.seen[replica_id] = now

    async def live_replicas(self, session: AsyncSession, since: datetime) -> int:
        return sum(1 for at in self.seen.values() if at >= since)

    async def forget_replicas(self, session: AsyncSession, before: datetime) -> None:
        self.seen = {r: at for r, at in self.seen.items() if at >= before}

    async def leases(self, session: AsyncSession) -> dict[int, tuple[str, datetime]]:
        return dict(self.held)

    async def claim(self, session: AsyncSession, partition: int, owner: str, now: datetime, until: datetime) -> bool:
        current = self.held.get(partition)
        if current is not None and current[0] != owner and current[1] >= now:
            return False  # another replica's live lease
        self.held[partition] = (owner, until)
        return True

    async def release(self, session: AsyncSession, partitions: Collection[int], owner: str) -> None:
        for p in partitions:
            if self.held.get(p, ("", T0))[0] == owner:
                del self.held[p]

    async def hold(
        self, session: AsyncSession, partitions: Collection[int], owner: str, now: datetime
    ) -> frozenset[int]:
        return frozenset(
            p for p in partitions if p in self.held and self.held[p][0] == owner and self.held[p][1] >= now
        )

    async def ensure_month_partitions(self, session: AsyncSession, months: Collection[MonthRange]) -> list[str]:
        return []

    def owned_by(self, owner: str) -> set[int]:
        return {p for p, (o, _) in self.held.items() if o == owner}


class FakeConsumers:
    """The stream consumers one replica runs."""

    def __init__(self) -> None:
        self._running: set[int] = set()
        self.started: list[int] = []
        self.stopped: list[int] = []

    @property
    def running(self) -> frozenset[int]:
        return frozenset(self._running)

    async def start(self, partition: int) -> None:
        self._running.add(partition)
        self.started.append(partition)

    async def stop(self, partition: int) -> None:
        if partition in self._running:
            self._running.discard(partition)
            self.stopped.append(partition)

    async def stop_all(self) -> None:
        for p in sorted(self._running):
            await self.stop(p)


@dataclass
class AuditWorld:
    """One audit database (the fakes) and the use cases of one replica over it."""

    clock: FrozenClock = field(default_factory=lambda: FrozenClock(T0))
    events: FakeEvents = field(default_factory=FakeEvents)
    alerts: FakeAlerts = field(default_factory=FakeAlerts)
    triage: FakeTriage = field(default_factory=FakeTriage)
    leases: FakeLeases = field(default_factory=FakeLeases)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    announced: list[LiveItem] = field(default_factory=list)
    key: CheckpointKey = field(default_factory=lambda: CheckpointKey(b"unit-test-secret-key"))

    def __post_init__(self) -> None:
        self.checkpoints = FakeCheckpoints(self.events)
        self.db = FakeSessionmaker(self.events, self.alerts, self.triage, self.checkpoints, self.leases, self.outbox)
        sm = self.db.as_sessionmaker()
        self.log = AuditLog(
            sm,
            self.clock,
            LiveHub(),
            events=self.events,
            alerts=self.alerts,
            checkpoints=self.checkpoints,
            leases=self.leases,
            announce=self.announced.extend,
        )
        self.actions = AuditActions(sm, self.clock, self.outbox, alerts=self.alerts, triage=self.triage)  # type: ignore[arg-type]
        self.signer = ChainCheckpoints(sm, self.key, self.clock, events=self.events, checkpoints=self.checkpoints)
        self.retention = FakeRetention(self.events, self.checkpoints)

    def archiver(self, sink: FakeArchiveSink) -> Archiver:
        return Archiver(
            self.db.as_sessionmaker(),
            self.key,
            self.clock,
            sink,
            events=self.events,
            checkpoints=self.checkpoints,
            retention=self.retention,
        )

    def replica(
        self, replica_id: str, *, partitions: int = PARTITIONS, **kw: Any
    ) -> tuple[StreamPartitions, FakeConsumers]:
        consumers = FakeConsumers()
        sp = StreamPartitions(
            self.db.as_sessionmaker(),
            self.clock,
            consumers,
            leases=self.leases,
            replica_id=replica_id,
            partitions=partitions,
            **kw,
        )
        return sp, consumers
