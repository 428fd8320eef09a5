"""CSRF defences (docs/api.md): origin checks for every unsafe non-Bearer request, and a
session-bound token (HMAC of the session id) in a cookie that must be echoed in
`X-CSRF-Token` on cookie-authenticated unsafe requests. The one place these checks live:
the pipeline and forward auth ask `cross_site_refusal`, cookie authentication and the cookie
refresh ask `CookieCsrf`."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from deelrx_kit import keys
from deelrx_kit.errors import DomainError

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


def cross_site_refusal(headers: Mapping[str, str], public_origin: str) -> DomainError | None:
    """The refusal of an unsafe request sent from another site (Origin, Sec-Fetch-Site), or None."""
    if origin_allowed(headers.get("origin"), headers.get("sec-fetch-site"), public_origin):
        return None
    return DomainError("csrf_failed", "Cross-site request refused")


@dataclass(frozen=True)
class CookieCsrf:
    """The double-submit check of one cookie-authenticated unsafe request, in its two steps:
    the header echoes the csrf cookie (checked before any work, renewal included), and the
    cookie is bound to the session (checked once the session id is known)."""

    header: str | None
    cookie: str | None

    def check_echoed(self) -> None:
        if not header_matches_cookie(self.header, self.cookie):
            raise DomainError("csrf_failed", "Missing or wrong X-CSRF-Token header")

    def check_bound(self, secret: bytes, session_id: str) -> None:
        if not bound_to_session(secret, self.cookie or "", session_id):
            raise DomainError("csrf_failed", "CSRF token does not belong to this session")
