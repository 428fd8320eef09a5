"""One key per purpose, derived from the process secret with HKDF-SHA256 and a label.

The process secret is never used directly as an HMAC or encryption key: a value computed for
one purpose (a CSRF token, a pseudonym for an email address, a rate-limit key, a sealed blob)
can then never be obtained, or forged, through another.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Purposes (the HKDF `info` labels). A new use of the secret gets a new label here.
CSRF = "csrf-token"
IDENTIFIER_HASH = "identifier-hash"
LOGIN_THROTTLE = "login-throttle"
RATE_LIMIT_KEY = "rate-limit-key"
DEVICE_COOKIE = "device-cookie"
RECOVERY_CODE_SELECTOR = "recovery-code-selector"
AUDIT_CHECKPOINT = "audit-checkpoint"  # Ed25519 seed of the audit chain checkpoint signer

_SALT = b"deelrx-purpose-keys-v1"
# Sealing (AES-GCM at rest) has derived its keys this way from the start; blobs sealed
# before the other purposes moved to HKDF must keep opening, so the salt stays.
SEALING_SALT = b"deelrx-sessions"


@lru_cache(maxsize=64)
def derive_key(secret: bytes, purpose: str, salt: bytes = _SALT) -> bytes:
    """A 256-bit key for `purpose`; different purposes (or salts) give independent keys."""
    if not secret:
        raise ValueError("empty secret")
    if not purpose:
        raise ValueError("empty purpose")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=purpose.encode()).derive(secret)


def sealing_key(secret: bytes, purpose: str) -> bytes:
    """The AES-256-GCM key sealing blobs of `purpose` (e.g. "signing-key")."""
    return derive_key(secret, purpose, SEALING_SALT)
