"""One request's exchange: what the pipeline knows about the request (id, client IP) and what the
handler decided about the answer (cookies, caching, the rate-limit decision, the caller).

The pipeline (gateway/pipeline.py) creates it before the app runs; routes and helpers fill it
through the methods below; the pipeline writes the headers from it when the answer starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection
from starlette.types import Scope

if TYPE_CHECKING:
    from gateway.auth import AuthContext, IssuedTokens
    from gateway.ratelimit import Decision

_KEY = "deelrx_exchange"


@dataclass
class Exchange:
    request_id: str
    client_ip: str
    # The authenticated caller, once gateway/auth.py resolved it.
    auth: AuthContext | None = None
    # Tokens to deliver as cookies, or cookies to clear (never both: clearing wins).
    issued: IssuedTokens | None = None
    clear_cookies: bool = False
    # A fresh device cookie after a complete login (gateway/device_cookie.py).
    device_token: str = ""
    # Answers carrying secrets (tokens, TOTP seeds) are never cached.
    no_store: bool = False
    # The decision whose RateLimit headers the answer carries.
    ratelimit: Decision | None = None
    # Counted once per request even when asked twice (gateway/early_limits.py).
    refresh_limited: Decision | None = None
    anon_limited: Decision | None = None

    def deliver_cookies(self, tokens: IssuedTokens) -> None:
        self.issued = tokens

    def end_cookie_session(self, *, clear: bool) -> None:
        """The session of this request ended: deliver no tokens, and clear the cookies if asked."""
        self.issued = None
        self.clear_cookies = clear

    def drop_cookies(self) -> None:
        self.clear_cookies = True

    def forbid_caching(self) -> None:
        self.no_store = True

    def remember_device(self, token: str) -> None:
        if token:
            self.device_token = token

    def install(self, scope: Scope) -> None:
        scope.setdefault("state", {})[_KEY] = self


def find_exchange(conn: HTTPConnection) -> Exchange | None:
    """The exchange of this request, or None for one that bypassed the pipeline."""
    found = conn.scope.get("state", {}).get(_KEY)
    return found if isinstance(found, Exchange) else None


def exchange_of(conn: HTTPConnection) -> Exchange:
    """The exchange the pipeline created for this request."""
    found = find_exchange(conn)
    if found is None:
        raise RuntimeError("no Exchange: the request did not pass through RequestPipeline")
    return found
