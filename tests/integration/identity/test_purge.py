"""Expired identity rows are purged in batches, by one replica at a time, and live ones stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from deelrx_kit import db
from deelrx_kit.purge import purge
from services.identity import purge as identity_purge
from services.identity.adapters.signups import SqlPendingSignupStore
from services.identity.adapters.tables import (
    account_holds,
    login_accounts,
    login_clients,
    mail_throttle,
    pending_signups,
    security_responses,
)
from services.identity.use_cases.signup import MAX_PENDING_SIGNUPS_PER_ADDRESS

MIGRATIONS = Path(__file__).parents[3] / "services" / "identity" / "migrations"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def _database(url: str):
    await db.migrate(MIGRATIONS, url, "identity")
    engine = db.create_engine(url, "identity")
    return engine, db.session_factory(engine)


def _signup(i: int, email: str, expires_at: datetime, created_at: datetime = NOW) -> dict:
    return {
        "id": f"sgn_{i:04d}",
        "email": email,
        "email_normalized": email,
        "name": "N",
        "password_hash": "h",
        "token_hash": f"{i:064d}",
        "expires_at": expires_at,
        "created_at": created_at,
    }


async def _count(sessions, table, *where) -> int:
    async with sessions() as s:
        return int((await s.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def test_expired_rows_are_purged_in_batches_and_live_rows_stay(database_url: str) -> None:
    engine, sessions = await _database(database_url)
    old, day = NOW - timedelta(days=2), timedelta(days=1)
    try:
        async with sessions() as s, s.begin():
            await s.execute(
                insert(pending_signups),
                [_signup(i, f"gone{i}@example.com", NOW - timedelta(minutes=1)) for i in range(7)]
                + [_signup(99, "live@example.com", NOW + day)],
            )
            await s.execute(
                insert(login_clients),
                [
                    {"account_key": f"a{i}", "client": "ip", "failures": 3, "locked_until": None, "updated_at": old}
                    for i in range(5)
                ]
                + [
                    {
                        "account_key": "locked",
                        "client": "ip",
                        "failures": 10,
                        "locked_until": NOW + day,
                        "updated_at": old,
                    },
                    {"account_key": "recent", "client": "ip", "failures": 2, "locked_until": None, "updated_at": NOW},
                ],
            )
            await s.execute(
                insert(login_accounts),
                [
                    {"account_key": "cleared", "failures": 0, "updated_at": NOW - timedelta(hours=2)},
                    {"account_key": "forgotten", "failures": 3, "updated_at": NOW - timedelta(days=31)},
                    {"account_key": "at_limit", "failures": 100, "updated_at": NOW - timedelta(days=90)},
                    {"account_key": "counting", "failures": 3, "updated_at": NOW - timedelta(days=3)},
                ],
            )
            await s.execute(
                insert(mail_throttle),
                [
                    {"purpose": "verification", "address_key": "old", "last_sent_at": old},
                    {"purpose": "verification", "address_key": "new", "last_sent_at": NOW},
                    {"purpose": "first_sign_in", "address_key": "marker", "last_sent_at": old},
                ],
            )
            hold = {"lock_reason": "", "mfa_reason": "", "mfa_required_at": None}
            await s.execute(
                insert(account_holds),
                [
                    {**hold, "account": "user:ended", "locked_until": NOW - day, "updated_at": old},
                    {**hold, "account": "user:locked", "locked_until": NOW + day, "updated_at": old},
                    {**hold, "account": "user:mfa", "locked_until": None, "updated_at": old, "mfa_required_at": old},
                    {**hold, "account": "user:recent", "locked_until": None, "updated_at": NOW},
                ],
            )
            await s.execute(
                insert(security_responses),
                [
                    {"alert_id": "alr_old", "action": "lock_account", "applied_at": NOW - timedelta(days=31)},
                    {"alert_id": "alr_new", "action": "lock_account", "applied_at": old},
                ],
            )
        result = await purge(sessions, identity_purge.RULES, NOW, lock_name="test-purge", batch=2)
        assert result.ran
        assert result.deleted == {
            "pending_signups": 7,
            "login_clients": 5,
            "login_accounts": 2,
            "mail_throttle": 1,
            "password_resets": 0,
            "mfa_mail_codes": 0,
            "mfa_challenges": 0,
            "account_holds": 1,
            "security_responses": 1,
        }
        async with sessions() as s:
            assert list((await s.execute(select(pending_signups.c.id))).scalars()) == ["sgn_0099"]
            assert sorted((await s.execute(select(login_clients.c.account_key))).scalars()) == ["locked", "recent"]
            assert sorted((await s.execute(select(login_accounts.c.account_key))).scalars()) == ["at_limit", "counting"]
            assert sorted((await s.execute(select(mail_throttle.c.address_key))).scalars()) == ["marker", "new"]
            kept = sorted((await s.execute(select(account_holds.c.account))).scalars())
            assert kept == ["user:locked", "user:mfa", "user:recent"]
            assert list((await s.execute(select(security_responses.c.alert_id))).scalars()) == ["alr_new"]
    finally:
        await engine.dispose()


async def test_purge_runs_on_one_replica_at_a_time(postgres_url: str) -> None:
    engine, sessions = await _database(postgres_url)
    other = db.create_engine(postgres_url, "identity")
    try:
        async with sessions() as s, s.begin():
            await s.execute(insert(pending_signups), [_signup(1, "gone@example.com", NOW - timedelta(hours=1))])
        async with other.connect() as replica:
            # Another replica is purging: this one skips the round and deletes nothing.
            await replica.execute(text("SELECT pg_advisory_lock(hashtext(:n))"), {"n": identity_purge.LOCK_NAME})
            skipped = await purge(sessions, identity_purge.RULES, NOW, lock_name=identity_purge.LOCK_NAME)
            assert not skipped.ran
            assert await _count(sessions, pending_signups) == 1
            await replica.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": identity_purge.LOCK_NAME})
        ran = await purge(sessions, identity_purge.RULES, NOW, lock_name=identity_purge.LOCK_NAME)
        assert ran.ran and ran.deleted["pending_signups"] == 1
        # The lock was released: the next round runs again.
        assert (await purge(sessions, identity_purge.RULES, NOW, lock_name=identity_purge.LOCK_NAME)).ran
    finally:
        await other.dispose()
        await engine.dispose()


@pytest.mark.parametrize("signups", [3, 12])
async def test_repeated_signups_of_one_address_keep_only_the_newest(database_url: str, signups: int) -> None:
    engine, sessions = await _database(database_url)
    try:
        for i in range(signups):
            async with sessions() as s, s.begin():
                row = _signup(i, "ada@example.com", NOW + timedelta(days=1), NOW + timedelta(seconds=i))
                await s.execute(insert(pending_signups).values(**row))
                await SqlPendingSignupStore().keep_newest(s, "ada@example.com", MAX_PENDING_SIGNUPS_PER_ADDRESS)
        async with sessions() as s:
            kept = sorted((await s.execute(select(pending_signups.c.id))).scalars())
        newest = [f"sgn_{i:04d}" for i in range(signups)][-MAX_PENDING_SIGNUPS_PER_ADDRESS:]
        assert kept == newest
    finally:
        await engine.dispose()
