"""What identity forgets, and when (batched, one replica at a time: `deelrx_kit.purge`).

- pending sign-ups: once their link expired (and beyond the newest
  MAX_PENDING_SIGNUPS_PER_ADDRESS of an address, when a new one arrives: use_cases/signup.py);
- per-client login counters: a day after the last attempt, unless a lock is still running;
- account-wide login counters: an hour after they were cleared, or 30 days after the last
  failure; a counter that reached the limit stays until a password reset clears it;
- mail throttles: an hour after the last mail (the longest interval they enforce is 15 minutes),
  except the permanent `first_sign_in` marker;
- password reset tokens and MFA login challenges: once expired;
- account holds of automatic responses: a day after the last change, once the lock ended and
  no second factor is still demanded; mailed sign-in codes once expired; the record of the
  responses applied per alert after 30 days (no alert is redelivered that late).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx_kit.clock import Clock
from deelrx_kit.purge import PurgeRule, purge_loop
from services.identity.adapters.tables import (
    account_holds,
    login_accounts,
    login_clients,
    mail_throttle,
    mfa_challenges,
    mfa_mail_codes,
    password_resets,
    pending_signups,
    security_responses,
)
from services.identity.domain import lockout

CLIENT_COUNTER_RETENTION = timedelta(days=1)
CLEARED_ACCOUNT_RETENTION = timedelta(hours=1)
ACCOUNT_FAILURE_MEMORY = timedelta(days=30)
MAIL_THROTTLE_RETENTION = timedelta(hours=1)
HOLD_RETENTION = timedelta(days=1)
RESPONSE_MEMORY = timedelta(days=30)
PURGE_INTERVAL_SECONDS = 300.0
LOCK_NAME = "deelrx-identity-purge"


def _login_clients_expired(now: datetime) -> object:
    c = login_clients.c
    return and_(
        c.updated_at <= now - CLIENT_COUNTER_RETENTION,
        or_(c.locked_until.is_(None), c.locked_until <= now),
    )


def _login_accounts_expired(now: datetime) -> object:
    c = login_accounts.c
    return or_(
        and_(c.failures == 0, c.updated_at <= now - CLEARED_ACCOUNT_RETENTION),
        and_(c.failures < lockout.ACCOUNT_LIMIT, c.updated_at <= now - ACCOUNT_FAILURE_MEMORY),
    )


def _holds_expired(now: datetime) -> object:
    h = account_holds.c
    return and_(
        h.updated_at <= now - HOLD_RETENTION,
        h.mfa_required_at.is_(None),
        or_(h.locked_until.is_(None), h.locked_until <= now),
    )


RULES = (
    PurgeRule("pending_signups", pending_signups, lambda now: pending_signups.c.expires_at <= now),
    PurgeRule("login_clients", login_clients, _login_clients_expired),
    PurgeRule("login_accounts", login_accounts, _login_accounts_expired),
    PurgeRule(
        "mail_throttle",
        mail_throttle,
        # `first_sign_in` is a permanent marker (no new-device mail for an account's first sign-in).
        lambda now: and_(
            mail_throttle.c.last_sent_at <= now - MAIL_THROTTLE_RETENTION, mail_throttle.c.purpose != "first_sign_in"
        ),
    ),
    PurgeRule("password_resets", password_resets, lambda now: password_resets.c.expires_at <= now),
    PurgeRule("mfa_mail_codes", mfa_mail_codes, lambda now: mfa_mail_codes.c.expires_at <= now),
    PurgeRule("mfa_challenges", mfa_challenges, lambda now: mfa_challenges.c.expires_at <= now),
    PurgeRule("account_holds", account_holds, _holds_expired),
    PurgeRule(
        "security_responses",
        security_responses,
        lambda now: security_responses.c.applied_at <= now - RESPONSE_MEMORY,
    ),
)


async def run_purges(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, stop: asyncio.Event) -> None:
    await purge_loop(sessionmaker, RULES, clock, stop, lock_name=LOCK_NAME, every_seconds=PURGE_INTERVAL_SECONDS)
