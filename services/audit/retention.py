"""Retention: events stored before a configured age are first archived (a gzip NDJSON file per
chain and cut, ending with a checkpoint signed at the cut), and only then deleted. The chain
then starts at that signed (seq, hash) base, so it stays verifiable across the cut, and the
archive file itself can be checked against the same checkpoint.

The file is written to the sink's spool, then handed to an `ArchiveSink` (a directory or an
S3-compatible bucket, services/audit/archive_sink.py), which stores it and reads it back;
events are deleted only after that.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.periodic import run_every
from services.audit.adapters.archive_dir import DirectoryArchive
from services.audit.archive_sink import ArchiveSink, ArchiveStoreError, describe
from services.audit.checkpoints import CheckpointKey
from services.audit.domain.events import GENESIS_HASH, ChainedEvent, ChainVerifier, canonical_document, time_text
from services.audit.ports import CheckpointStore, EventStore, RetentionStore

log = structlog.get_logger(__name__)

BATCH = 1000


def _row(c: ChainedEvent) -> dict[str, Any]:
    # The hashed document plus the links, so an archive re-verifies without the database.
    row = canonical_document(c.event, chain_key=c.chain_key, seq=c.seq, stored_at=c.stored_at)
    return {**row, "prev_hash": c.prev_hash, "hash": c.hash}


class Archiver:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        key: CheckpointKey,
        clock: Clock,
        sink: ArchiveSink | Path,
        *,
        events: EventStore,
        checkpoints: CheckpointStore,
        retention: RetentionStore,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.key = key
        self.clock = clock
        self.sink: ArchiveSink = DirectoryArchive(sink) if isinstance(sink, Path) else sink
        self.events = events
        self.checkpoints = checkpoints
        self.retention = retention

    async def archive_chain(self, chain_key: str, before: datetime) -> str | None:
        """Archive, then delete, the chain's events stored before `before` (a prefix of it);
        the archive's location (a path or an s3:// URL), or None when there was nothing to do."""
        async with reading(self.sessionmaker) as s:
            base = await self.checkpoints.base_of(s, chain_key)
            head = await self.events.chain_head(s, chain_key)
            start_seq, start_hash = base if base is not None else (0, GENESIS_HASH)
            first_kept = await self.retention.first_kept_seq(s, chain_key, start_seq, before)
        if head is None:
            return None
        cut = (first_kept - 1) if first_kept is not None else head[0]
        if cut <= start_seq:
            return None
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", chain_key)
        name = f"{name}-{start_seq + 1:010d}-{cut:010d}.ndjson.gz"
        tmp = self.sink.spool / f"{name}.tmp"
        verifier = ChainVerifier(chain_key, start_seq=start_seq, start_hash=start_hash)
        last_hash = start_hash
        newest: datetime | None = None
        with gzip.open(tmp, "wt", encoding="utf-8") as out:
            after = start_seq
            while after < cut:
                async with reading(self.sessionmaker) as s:
                    rows = await self.events.chain_events(s, chain_key, after_seq=after, up_to_seq=cut, limit=BATCH)
                if not rows:
                    break
                for r in rows:
                    verifier.feed(r)
                    out.write(json.dumps(_row(r), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
                    last_hash = r.hash
                    newest = r.event.time if newest is None else max(newest, r.event.time)
                after = rows[-1].seq
            check = verifier.result(cut, last_hash)
            if not check.ok:
                log.warning("audit_archive_refused", chain_key=chain_key, first_bad_event_id=check.first_bad_event_id)
                out.close()
                tmp.unlink()
                return None
            cp = self.key.sign(chain_key, cut, last_hash, self.clock.now())
            out.write(json.dumps({"checkpoint": {**cp.__dict__, "signed_at": time_text(cp.signed_at)}}) + "\n")
        archive = await asyncio.to_thread(describe, name, tmp)
        try:
            location = await self.sink.store(archive)  # stored and read back before anything is deleted
        except ArchiveStoreError as exc:
            log.warning("audit_archive_not_stored", chain_key=chain_key, error=str(exc))
            tmp.unlink(missing_ok=True)
            return None
        async with transaction(self.sessionmaker) as s:
            existing = {c.seq for c in await self.checkpoints.for_chain(s, chain_key)}
            if cut not in existing:
                await self.checkpoints.add(s, cp)
            await self.retention.drop_archived(
                s, chain_key, cut, last_hash, self.clock.now(), location, archived_until=newest
            )
        log.info("audit_archived", chain_key=chain_key, up_to_seq=cut, archive=location)
        return location

    async def archive_older_than(self, age: timedelta, limit: int = 1000) -> int:
        before = self.clock.now() - age
        async with reading(self.sessionmaker) as s:
            keys = await self.retention.chains_stored_before(s, before, limit)
        done = 0
        for key in keys:
            if await self.archive_chain(key, before) is not None:
                done += 1
        return done

    async def run(self, stop: asyncio.Event, age: timedelta, interval_seconds: float) -> None:
        await run_every(
            interval_seconds, lambda: self.archive_older_than(age), stop, name="audit_archive", wait_first=True
        )
