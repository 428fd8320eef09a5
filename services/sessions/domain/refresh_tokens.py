"""Refresh tokens and their rotation rule.

A token is opaque (`rt_` + 256 random bits), stored only as its SHA-256. Every use rotates it:
the presented token is marked rotated and points at its successor. Presenting a rotated token
again is either a benign race (two tabs refreshing at once, a lost response) or theft; the
grace rule tells them apart as well as a server can.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import Enum

PREFIX = "rt_"
# The API caps the grace interval; a misconfiguration must not widen the theft window.
MAX_GRACE_SECONDS = 30
_MAX_LENGTH = 128


def new_refresh_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def plausible(token: str) -> bool:
    """A cheap shape check so garbage never reaches the database."""
    return token.startswith(PREFIX) and 40 <= len(token) <= _MAX_LENGTH and token.isascii()


def grace_interval(configured_seconds: int) -> timedelta:
    return timedelta(seconds=max(0, min(configured_seconds, MAX_GRACE_SECONDS)))


class Presentation(Enum):
    ROTATE = "rotate"  # the family's current token: issue a successor
    RETURN_SUCCESSOR = "return_successor"  # a just-rotated token inside the grace: same successor again
    REUSE = "reuse"  # anything else: the family is compromised


def judge(
    *,
    rotated_at: datetime | None,
    successor_unused: bool,
    successor_recoverable: bool,
    now: datetime,
    grace: timedelta,
) -> Presentation:
    """What presenting a known refresh token means."""
    if rotated_at is None:
        return Presentation.ROTATE
    if successor_unused and successor_recoverable and now - rotated_at <= grace:
        return Presentation.RETURN_SUCCESSOR
    return Presentation.REUSE
