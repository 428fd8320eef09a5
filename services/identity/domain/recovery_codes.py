"""Recovery codes: 10 per set, 74 bits each, readable by people, stored only as hashes.

A code is 15 symbols from a 31-symbol alphabet without look-alikes (no 0/O, 1/I/L), shown
as three groups of five (`7KQ2M-XR4TB-9HCWN`): 15 x log2(31) = 74.3 bits. Input is matched
case-insensitively, ignoring spaces and hyphens. Each stored code has a short *keyed*
selector (an HMAC of the code: it reveals nothing without the service key) that finds the one
row to check, so verifying costs at most one argon2id hash; argon2id because 74 bits is
below the 112 bits from which ASVS 5.0 (6.5.2) accepts a fast hash.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GROUPS = 3
GROUP_LENGTH = 5
LENGTH = GROUPS * GROUP_LENGTH
COUNT = 10
ENTROPY_BITS = LENGTH * math.log2(len(ALPHABET))
LOW_WATER = 3  # at or below this many left, the notice suggests a new set
_MAX_INPUT = 64


def generate(count: int = COUNT) -> list[str]:
    """A new set, formatted for people."""
    return [_format("".join(secrets.choice(ALPHABET) for _ in range(LENGTH))) for _ in range(count)]


def _format(raw: str) -> str:
    return "-".join(raw[i : i + GROUP_LENGTH] for i in range(0, LENGTH, GROUP_LENGTH))


def normalize(raw: str) -> str | None:
    """The code's canonical form (15 upper-case symbols), or None when it cannot be one."""
    if not raw or len(raw) > _MAX_INPUT:
        return None
    code = raw.replace("-", "").replace(" ", "").upper()
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def selector(key: bytes, normalized: str) -> str:
    """Keyed lookup value for a normalized code (64 bits of HMAC-SHA256)."""
    return hmac.new(key, b"recovery-code:" + normalized.encode(), hashlib.sha256).hexdigest()[:16]
