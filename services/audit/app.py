"""Audit use cases: store events and alerts (idempotently, in hash chains), query, export,
verify, list alerts, and subscribe to the live feed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import validation_error
from services.audit.domain.alerts import AlertRecord, view_for_team
from services.audit.domain.checkpoints import checkpoint_problem
from services.audit.domain.events import (
    GENESIS_HASH,
    SECURITY_TYPE_PREFIXES,
    ChainCheck,
    ChainedEvent,
    ChainVerifier,
    EventRecord,
    chain,
    is_security_type,
    team_chain,
    user_chain,
)
from services.audit.domain.paging import Cursor, check_id, check_range, decode_cursor, page_limit
from services.audit.live_hub import LiveHub, LiveItem, Subscriber
from services.audit.ports import AlertStore, CheckpointStore, EventStore, LeaseStore, LiveAnnouncer

if TYPE_CHECKING:
    from services.audit.checkpoints import CheckpointKey

log = structlog.get_logger(__name__)

APPEND_ATTEMPTS = 50
EXPORT_BATCH = 500
VERIFY_BATCH = 1000
MAX_MEMBERS = 10_000


class LeaseLost(Exception):
    """This replica no longer holds some of the partitions it was storing for."""

    def __init__(self, partitions: frozenset[int]) -> None:
        super().__init__(f"partitions {sorted(partitions)} are no longer held by this replica")
        self.partitions = partitions


@dataclass(frozen=True)
class PartitionFence:
    """Store only while `owner` holds every one of these stream partitions."""

    owner: str
    partitions: frozenset[int]


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str


def _exactly_one(team_id: str, user_id: str) -> None:
    if bool(team_id) == bool(user_id):
        raise validation_error("/team_id", "exactly one of team_id and user_id is required")
    check_id("/team_id" if team_id else "/user_id", team_id or user_id)


class AuditLog:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        hub: LiveHub,
        *,
        events: EventStore,
        alerts: AlertStore,
        checkpoints: CheckpointStore,
        leases: LeaseStore,
        announce: LiveAnnouncer | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.hub = hub
        self.events = events
        self.alerts = alerts
        self.checkpoints = checkpoints
        self.leases = leases
        # Where newly stored items go: the hub, or every replica's hub (services/audit/adapters/nats_live.py).
        self.announce = announce or self._to_hub
        # Set by bootstrap: verification then also checks the chain's signed checkpoints.
        self.checkpoint_key: CheckpointKey | None = None

    def _to_hub(self, items: Sequence[LiveItem]) -> None:
        for item in items:
            self.hub.publish(item)

    # -- ingestion ---------------------------------------------------------------------
    async def record_event(self, event: EventRecord) -> ChainedEvent | None:
        """Append to the event's chain; None when the event is already stored (redelivery)."""
        stored = await self.record_events([event])
        return stored[0] if stored else None

    async def record_events(
        self, events: Sequence[EventRecord], *, fence: PartitionFence | None = None, announce: bool = True
    ) -> list[ChainedEvent]:
        """Append a batch in one transaction, each chain in the order given; events already
        stored (redeliveries) are skipped, and so are events of a chain no newer than what
        retention archived from it (their ids are gone; see services/audit/retention.py).
        The batch's chain heads are locked for the transaction; it is retried only when
        another appender started one of its new chains (or stored one of its events) first.
        With a `fence`, nothing is stored unless this replica still holds those partitions
        (else LeaseLost names the lost ones), and their leases cannot pass to another replica
        before the transaction ends. `announce` False: the caller announces what was stored
        itself."""
        unique: dict[str, EventRecord] = {}
        for e in events:
            unique.setdefault(e.id, e)
        for attempt in range(APPEND_ATTEMPTS):
            try:
                async with transaction(self.sessionmaker) as s:
                    now = self.clock.now()
                    if fence is not None:
                        held = await self.leases.hold(s, fence.partitions, fence.owner, now)
                        if held != fence.partitions:
                            raise LeaseLost(fence.partitions - held)
                    by_chain: dict[str, list[EventRecord]] = {}
                    for e in unique.values():
                        by_chain.setdefault(e.chain_key, []).append(e)
                    # Heads first, then the ids: once a chain's head is locked, whatever an
                    # earlier appender stored on it is committed and visible.
                    heads = await self.events.lock_heads(s, list(by_chain)) if by_chain else {}
                    known = await self.events.existing_event_ids(s, list(unique))
                    # Retention trimmed the ids of archived events: one no newer than the newest
                    # archived of its chain is taken for a late redelivery and not chained again.
                    archived = await self.checkpoints.archived_until(s, list(by_chain)) if by_chain else {}
                    refused = [
                        e.id
                        for e in unique.values()
                        if e.id not in known and e.chain_key in archived and e.time <= archived[e.chain_key]
                    ]
                    known.update(refused)
                    stored: list[ChainedEvent] = []
                    moved: list[ChainedEvent] = []
                    created: list[ChainedEvent] = []
                    for key, chain_events in by_chain.items():
                        seq, prev_hash = heads.get(key, (0, GENESIS_HASH))
                        linked = []
                        for e in chain_events:
                            if e.id in known:
                                continue
                            c = chain(e, prev_seq=seq, prev_hash=prev_hash, stored_at=now)
                            linked.append(c)
                            seq, prev_hash = c.seq, c.hash
                        if linked:
                            (moved if key in heads else created).append(linked[-1])
                            stored.extend(linked)
                    await self.events.set_heads(s, moved, created)
                    if stored:
                        await self.events.insert_events(s, stored)
            except IntegrityError:
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                continue
            if refused:
                log.warning("audit_events_older_than_archive", count=len(refused), event_ids=refused[:10])
            if stored and announce:
                self.announce([c.event for c in stored])
            return stored
        raise RuntimeError("audit batch too contended to append")

    async def record_alert(self, alert: AlertRecord) -> bool:
        """Store an alert once; False when it was already stored."""
        try:
            async with transaction(self.sessionmaker) as s:
                if await self.alerts.alert_exists(s, alert.id):
                    return False
                await self.alerts.insert_alert(s, alert, self.clock.now())
        except IntegrityError:
            return False  # a concurrent replica stored it first
        self.announce([alert])
        return True

    # -- reads -------------------------------------------------------------------------
    async def query_events(
        self,
        *,
        team_id: str = "",
        user_id: str = "",
        types: Sequence[str] = (),
        actor_user_id: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 0,
        cursor: str = "",
    ) -> Page[EventRecord]:
        _exactly_one(team_id, user_id)
        size = page_limit(limit)
        after = decode_cursor(cursor)
        check_range(since, until)
        if len(types) > 50:
            raise validation_error("/types", "too many types")
        if user_id:
            # A user's own security activity, across teams: never someone else's events.
            if actor_user_id and actor_user_id != user_id:
                return Page([], "")
            if types:
                allowed = [t for t in types if is_security_type(t)]
                if not allowed:
                    return Page([], "")
                types = allowed
        async with reading(self.sessionmaker) as s:
            rows = await self.events.query_events(
                s,
                team_id=team_id or None,
                actor_user_id=user_id or actor_user_id or None,
                type_prefixes=SECURITY_TYPE_PREFIXES if user_id else (),
                types=types,
                since=since,
                until=until,
                after=after,
                limit=size + 1,
            )
        items = [r.event for r in rows[:size]]
        more = len(rows) > size
        return Page(items, Cursor(items[-1].time, items[-1].id).encode() if more else "")

    async def export_events(
        self, *, team_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[EventRecord]:
        """The team's events, oldest first, read in batches (no long-held transaction)."""
        if not team_id:
            raise validation_error("/team_id", "team_id is required")
        check_id("/team_id", team_id)
        check_range(since, until)
        after: Cursor | None = None
        while True:
            async with reading(self.sessionmaker) as s:
                rows = await self.events.query_events(
                    s,
                    team_id=team_id,
                    actor_user_id=None,
                    since=since,
                    until=until,
                    after=after,
                    limit=EXPORT_BATCH,
                    newest_first=False,
                )
            for r in rows:
                yield r.event
            if len(rows) < EXPORT_BATCH:
                return
            after = Cursor(rows[-1].event.time, rows[-1].event.id)

    async def verify_chain(self, *, team_id: str = "", user_id: str = "") -> ChainCheck:
        _exactly_one(team_id, user_id)
        key = team_chain(team_id) if team_id else user_chain(user_id)
        async with reading(self.sessionmaker) as s:
            head = await self.events.chain_head(s, key)
            base = await self.checkpoints.base_of(s, key)
            signed = await self.checkpoints.for_chain(s, key) if self.checkpoint_key is not None else []
        if head is None and not signed:
            return ChainCheck(True, 0, "", "")
        head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
        # After archiving, the chain starts at a base that a signed checkpoint must cover.
        start_seq, start_hash = base if base is not None else (0, GENESIS_HASH)
        later = [c for c in signed if c.seq > start_seq]
        verifier = ChainVerifier(key, start_seq=start_seq, start_hash=start_hash, watch=frozenset(c.seq for c in later))
        after = start_seq
        while True:
            async with reading(self.sessionmaker) as s:
                rows = await self.events.chain_events(s, key, after_seq=after, up_to_seq=head_seq, limit=VERIFY_BATCH)
            for r in rows:
                verifier.feed(r)
            if len(rows) < VERIFY_BATCH:
                break
            after = rows[-1].seq
        result = verifier.result(head_seq, head_hash)
        if self.checkpoint_key is not None and (signed or base is not None):
            valid = [self.checkpoint_key.valid(c) for c in later]
            problem, at_seq = checkpoint_problem(later, head_seq, verifier.hash_at, valid)
            if base is not None and not any(
                c.seq == start_seq and c.head_hash == start_hash and self.checkpoint_key.valid(c) for c in signed
            ):
                problem, at_seq = (
                    f"the archived prefix (up to seq {start_seq}) is not covered by a signed checkpoint",
                    0,
                )
            result = replace(result, checkpoints_checked=len(signed))
            if problem:
                bad = result.first_bad_event_id or verifier.id_at.get(at_seq, "") or verifier.last_id
                result = replace(result, ok=False, first_bad_event_id=bad, problem=problem)
        if not result.ok:
            log.warning("audit_chain_broken", chain_key=key, first_bad_event_id=result.first_bad_event_id)
        return result

    async def list_alerts(
        self, *, team_id: str, member_user_ids: Sequence[str] = (), limit: int = 0, cursor: str = ""
    ) -> Page[AlertRecord]:
        if not team_id:
            raise validation_error("/team_id", "team_id is required")
        check_id("/team_id", team_id)
        if len(member_user_ids) > MAX_MEMBERS:
            raise validation_error("/member_user_ids", "too many members")
        size = page_limit(limit)
        after = decode_cursor(cursor)
        members = [m for m in member_user_ids if m]
        async with reading(self.sessionmaker) as s:
            rows = await self.alerts.query_alerts(
                s, team_id=team_id, member_user_ids=members, after=after, limit=size + 1
            )
        page = rows[:size]
        views = [v for v in (view_for_team(a, team_id, members) for a in page) if v is not None]
        more = len(rows) > size
        return Page(views, Cursor(page[-1].time, page[-1].id).encode() if more else "")

    # -- live --------------------------------------------------------------------------
    def subscribe(self, *, team_id: str, member_user_ids: Sequence[str] = ()) -> Subscriber:
        if not team_id:
            raise validation_error("/team_id", "team_id is required")
        check_id("/team_id", team_id)
        members = frozenset(m for m in member_user_ids if m)

        def accept(item: LiveItem) -> LiveItem | None:
            if isinstance(item, EventRecord):
                return item if item.team_id == team_id else None
            return view_for_team(item, team_id, members)

        return self.hub.subscribe(accept)
