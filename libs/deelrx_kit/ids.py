"""Opaque, prefixed, time-sortable identifiers (`usr_01J...`), ULID layout.

48 bits of milliseconds then 80 random bits, Crockford base32: ids sort by creation
time, which keeps index inserts local and makes cursors simple.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PREFIXES = frozenset({"usr", "tm", "ses", "inv", "evt", "alr", "key", "fam", "req", "sgn", "rst"})


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def ulid(ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if ms is None else ms
    return _encode(ms, 10) + _encode(secrets.randbits(80), 16)


def derived_id(prefix: str, when: datetime, *parts: str) -> str:
    """A ULID-shaped id that sorts by `when` and whose random part is a hash of `parts`:
    the same inputs give the same id, so replicas and redeliveries agree on it."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    ms = (when - _EPOCH) // timedelta(milliseconds=1)
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return f"{prefix}_{_encode(ms, 10)}{_encode(int.from_bytes(digest[:10], 'big'), 16)}"


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ulid()}"


def has_prefix(value: str, prefix: str) -> bool:
    """A cheap shape check for ids arriving from outside."""
    body = value.removeprefix(f"{prefix}_")
    return body != value and len(body) == 26 and all(c in _ALPHABET for c in body)
