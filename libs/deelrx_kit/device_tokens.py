"""Device cookies (OWASP "Slow down online guessing attacks with device cookies"): after a
successful login, the browser gets a signed token naming that device and the account. A later
login to the same account that presents it is counted apart from every other client: other
clients' failures neither lock it out nor spend its per-account rate limit.

Token: `d1.<nonce>.<account tag>.<signature>`; the account tag is a keyed hash of the
normalized email (the address itself never appears), the signature an HMAC of both.
Issued by identity; checked by identity (lockout) and by the gateway (rate limit). The HMAC key
is derived from the process secret for this purpose only (deelrx_kit.keys.DEVICE_COOKIE).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from deelrx_kit.keys import DEVICE_COOKIE, derive_key

_VERSION = "d1"
_MAX_LENGTH = 200


def account_tag(secret: bytes, email: str) -> str:
    key = derive_key(secret, DEVICE_COOKIE)
    return hmac.new(key, b"device-account:" + email.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]


def _signature(secret: bytes, nonce: str, tag: str) -> str:
    key = derive_key(secret, DEVICE_COOKIE)
    return hmac.new(key, f"device-cookie|{nonce}|{tag}".encode(), hashlib.sha256).hexdigest()


def issue(secret: bytes, email: str) -> str:
    nonce = secrets.token_urlsafe(16)
    tag = account_tag(secret, email)
    return f"{_VERSION}.{nonce}.{tag}.{_signature(secret, nonce, tag)}"


def device_for(secret: bytes, token: str | None, email: str) -> str | None:
    """The device id of a valid token for this account, else None (constant-time checks)."""
    if not token or len(token) > _MAX_LENGTH or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _VERSION:
        return None
    _, nonce, tag, signature = parts
    expected_tag = account_tag(secret, email)
    ok_tag = hmac.compare_digest(tag.encode(), expected_tag.encode())
    ok_sig = hmac.compare_digest(signature.encode(), _signature(secret, nonce, expected_tag).encode())
    return hashlib.sha256(nonce.encode()).hexdigest()[:24] if ok_tag and ok_sig else None
