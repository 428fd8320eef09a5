"""CSRF defences (docs/api.md): origin checks for every unsafe non-Bearer request, and a
session-bound token (HMAC of the session id) in a cookie that must be echoed in
`X-CSRF-Token` on cookie-authenticated unsafe requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from deelrx_kit import keys

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def normalize_origin(origin: str) -> str:
    """scheme://host[:port] lower-cased, without the scheme's default port."""
    parts = urlsplit(origin.strip().lower())
    port = parts.port
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def origin_allowed(origin: str | None, fetch_site: str | None, public_origin: str) -> bool:
    if fetch_site is not None and fetch_site.lower() not in ALLOWED_FETCH_SITES:
        return False
    if origin is None:
        return True
    try:
        return normalize_origin(origin) == normalize_origin(public_origin)
    except ValueError:  # e.g. a port out of range
        return False


def token_for(secret: bytes, session_id: str) -> str:
    """HMAC of the session id under the CSRF key derived from `secret` (one key per purpose)."""
    mac = hmac.new(keys.derive_key(secret, keys.CSRF), b"csrf:" + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def header_matches_cookie(header: str | None, cookie: str | None) -> bool:
    if not header or not cookie:
        return False
    return hmac.compare_digest(header.encode(), cookie.encode())


def bound_to_session(secret: bytes, value: str, session_id: str) -> bool:
    return hmac.compare_digest(value.encode(), token_for(secret, session_id).encode())
