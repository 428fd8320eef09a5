"""PostgreSQL keeps audit events in monthly partitions: the migration creates the current and
the next month (and a default partition), the service creates the months ahead, and an event
lands in the partition of its own time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from deelrx_kit.clock import SystemClock
from deelrx_kit.db import create_engine, migrate, session_factory
from deelrx_kit.ids import new_id
from services.audit.adapters import partition_sql
from services.audit.adapters.protobuf_records import event_record
from services.audit.domain.months import month_of
from services.audit.main import audit_log
from services.audit.stream_partitions import MonthPartitions

from .conftest import event

MIGRATIONS = Path(__file__).parents[3] / "services" / "audit" / "migrations"


class _Later(SystemClock):
    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return super().now() + self.ahead


async def _children(engine) -> set[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'audit_events'::regclass"
            )
        )
        return {r[0] for r in rows}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_events_land_in_the_partition_of_their_month(database_url: str) -> None:
    await migrate(MIGRATIONS, database_url, "audit")
    engine = create_engine(database_url, "audit")
    now = datetime.now(UTC)
    this_month, next_month = month_of(now), month_of(month_of(now).end)
    children = await _children(engine)
    assert {
        partition_sql.month_table(this_month),
        partition_sql.month_table(next_month),
        "audit_events_default",
    } <= children
    # Five months on, the service creates the months around that time ahead of the events.
    later = _Later(timedelta(days=150))
    created = await MonthPartitions(session_factory(engine), later, leases=partition_sql).ensure()
    far = month_of(later.now())
    assert partition_sql.month_table(far) in created
    assert await MonthPartitions(session_factory(engine), later, leases=partition_sql).ensure() == []  # idempotent
    team = new_id("tm")
    log = audit_log(session_factory(engine), SystemClock())
    evs = [
        event("team.updated", team_id=team, when=when) for when in (now, later.now(), datetime(2001, 1, 1, tzinfo=UTC))
    ]
    await log.record_events([event_record(e, now) for e in evs])
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, tableoid::regclass::text FROM audit_events WHERE team_id = :t"), {"t": team}
        )
        where = dict(rows.all())
    assert where == {
        evs[0].id: partition_sql.month_table(this_month),
        evs[1].id: partition_sql.month_table(far),
        evs[2].id: "audit_events_default",  # a time outside every created month is kept, not refused
    }
    assert (await log.verify_chain(team_id=team)).ok
    await engine.dispose()
