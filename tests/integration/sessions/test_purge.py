"""Ended sessions and their refresh tokens are purged in batches; live ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from deelrx_kit import db
from deelrx_kit.purge import purge
from services.sessions import purge as sessions_purge
from services.sessions.adapters.sql import refresh_tokens, sessions_table

MIGRATIONS = Path(__file__).parents[3] / "services" / "sessions" / "migrations"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _session(sid: str, *, expires_at: datetime, revoked_at: datetime | None = None) -> dict:
    return {
        "id": sid,
        "user_id": "usr_1",
        "team_id": "",
        "family_id": f"fam_{sid}",
        "device_browser": "",
        "device_os": "",
        "device_type": "other",
        "device_label": "",
        "device_fingerprint": "",
        "ip": "",
        "created_at": expires_at - timedelta(hours=12),
        "last_seen_at": expires_at - timedelta(hours=12),
        "expires_at": expires_at,
        "idle_timeout_seconds": 1800,
        "idle_expires_at": expires_at,
        "amr": "[]",
        "auth_time": expires_at - timedelta(hours=12),
        "scope": "",
        "revoked_at": revoked_at,
        "revoke_reason": "",
    }


def _token(sid: str, n: int) -> dict:
    return {
        "token_hash": f"{sid}-{n}",
        "family_id": f"fam_{sid}",
        "session_id": sid,
        "generation": n,
        "issued_at": NOW - timedelta(days=30),
    }


async def test_ended_sessions_and_their_tokens_are_purged_in_batches(database_url: str) -> None:
    await db.migrate(MIGRATIONS, database_url, "sessions")
    engine = db.create_engine(database_url, "sessions")
    sessions = db.session_factory(engine)
    rows = {
        "ses_old": _session("ses_old", expires_at=NOW - timedelta(days=8)),  # row and tokens go
        "ses_revoked": _session("ses_revoked", expires_at=NOW + timedelta(hours=1), revoked_at=NOW - timedelta(days=2)),
        "ses_live": _session("ses_live", expires_at=NOW + timedelta(hours=1)),
    }
    try:
        async with sessions() as s, s.begin():
            await s.execute(insert(sessions_table), list(rows.values()))
            await s.execute(insert(refresh_tokens), [_token(sid, n) for sid in rows for n in range(3)])
        result = await purge(sessions, sessions_purge.RULES, NOW, lock_name="test-purge", batch=2)
        assert result.deleted == {"refresh_tokens": 6, "sessions": 1}
        async with sessions() as s:
            # A session revoked two days ago keeps its row (listed history) but not its tokens.
            assert sorted((await s.execute(select(sessions_table.c.id))).scalars()) == ["ses_live", "ses_revoked"]
            assert sorted((await s.execute(select(refresh_tokens.c.session_id).distinct())).scalars()) == ["ses_live"]
    finally:
        await engine.dispose()
