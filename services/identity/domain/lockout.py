"""Failed-login limits (docs/api.md, "Failed logins").

A client is (client IP, account). Every password attempt is counted as a failure *before*
the password is checked and forgiven when it turns out right, so concurrent guesses can
never exceed the limits. A client that reaches `CLIENT_LIMIT` consecutive failures is
locked out of that account for `CLIENT_LOCK`; the account as a whole accepts at most
`ACCOUNT_LIMIT` failures from all clients together, then only a password reset (or a
successful login) clears it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

CLIENT_LIMIT = 10
CLIENT_LOCK = timedelta(minutes=15)
ACCOUNT_LIMIT = 100


@dataclass(frozen=True)
class Lockout:
    scope: str  # "client" (15 minutes), "account" (until a password reset) or "hold" (a security response)
    retry_after_seconds: int


def client_lockout(locked_until: datetime | None, now: datetime) -> Lockout:
    if locked_until is None or locked_until <= now:
        # Another attempt of this client is still being checked; it decides in a moment.
        return Lockout("client", 1)
    return Lockout("client", max(1, math.ceil((locked_until - now).total_seconds())))


def account_lockout() -> Lockout:
    # Waiting does not help; the hint keeps clients from hammering.
    return Lockout("account", int(CLIENT_LOCK.total_seconds()))


def hold_lockout(locked_until: datetime, now: datetime) -> Lockout:
    """A hold placed by an automatic response to a security alert; it ends by itself."""
    return Lockout("hold", max(1, math.ceil((locked_until - now).total_seconds())))
