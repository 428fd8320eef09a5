"""Single-use secrets sent by email: 256 random bits, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from deelrx_kit import keys

TOKEN_BYTES = 32
_MAX_PRESENTED_LENGTH = 128


def new_token() -> tuple[str, str]:
    """(token for the link, hash for the database)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def presented_hash(token: str) -> str | None:
    """Hash of a token from a request, or None when it cannot be one of ours."""
    if not token or len(token) > _MAX_PRESENTED_LENGTH or not token.isascii():
        return None
    return hash_token(token)


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def account_key(secret: bytes, email_normalized: str) -> str:
    """Counter key for an address, known or not, that never stores the address itself."""
    key = keys.derive_key(secret, keys.LOGIN_THROTTLE)
    return hmac.new(key, b"login-throttle:" + email_normalized.encode(), hashlib.sha256).hexdigest()
