"""A million events export in constant memory: the audit service reads a team's events in
keyset batches and streams them, so exporting ten times more events needs no more memory.

The service and the client share this process; its peak resident size (ru_maxrss) after a
100,000-event export and after a 1,000,000-event export are compared. Holding the export in
memory anywhere (the query, the servicer, the stream) would add hundreds of MiB."""

from __future__ import annotations

import resource
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx_kit.grpc_server import channel
from deelrx_kit.timestamps import to_timestamp
from services.audit.main import bootstrap
from tests.integration.harness import make_settings

# About six minutes alone (the export streams some 3,000 events/s with client and service on
# one core); the timeout leaves room for a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TEAM = "team_export_memory"
EVENTS = 1_000_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(db: Path, count: int) -> None:
    """Rows as the store writes them (SQLite keeps naive UTC text); the chain is not verified here."""
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO audit_events (id, chain_key, seq, prev_hash, hash, stored_at, time, type, team_id,"
            " actor_user_id, actor_ip, actor_user_agent, target_type, target_id, outcome, details, source,"
            " request_id, subject_hash, session_id) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, 'customer.updated', ?, 'usr_exporter', '198.51.100.7', 'Mozilla/5.0',"
            " 'customer', ?, 'success', '{\"fields\":[\"phone\"]}', 'test', ?, '', '')",
            (
                (
                    f"evt_{i:012d}",
                    f"team:{TEAM}",
                    i + 1,
                    "0" * 64,
                    f"{i:064x}",
                    (START + timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                    (START + timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                    TEAM,
                    f"cus_{i % 5000:06d}",
                    f"req_{i:012d}",
                )
                for i in range(count)
            ),
        )


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _export(stub: audit_pb2_grpc.AuditServiceStub, until: datetime) -> int:
    request = audit_pb2.ExportEventsRequest(team_id=TEAM, format="ndjson")
    request.range.until.CopyFrom(to_timestamp(until))
    count = 0
    async for _ in stub.ExportEvents(request):
        count += 1
    return count


async def test_a_million_event_export_needs_no_more_memory_than_a_tenth_of_it(tmp_path: Path, nats_url: str) -> None:
    db = tmp_path / "audit.db"
    rt = bootstrap(make_settings(tmp_path, f"sqlite+aiosqlite:///{db}", nats_url), grpc_port=0)
    await rt.start()  # creates the tables
    ch = channel(f"127.0.0.1:{rt.grpc.port}")
    try:
        _fill(db, EVENTS)
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        assert await _export(stub, START + timedelta(milliseconds=EVENTS // 10)) == EVENTS // 10
        after_tenth = _peak_mib()
        assert await _export(stub, START + timedelta(milliseconds=EVENTS)) == EVENTS
        growth = _peak_mib() - after_tenth
        # 900,000 more events passed through; a copy of them would be several hundred MiB.
        assert growth < 40, f"peak resident size grew {growth:.0f} MiB over the larger export"
    finally:
        await ch.close()
        await rt.stop()
