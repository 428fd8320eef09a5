"""Local verification of access tokens against the JWKS published by the sessions service.

Keys are fetched over gRPC, cached, and fetched again (at most every few seconds) when a
token names an unknown `kid`, which is how a key rotation reaches the gateway.
Verified claims are cached per token until the token expires.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
import structlog

log = structlog.get_logger("deelrx.gateway.tokens")

# `auth_time` and `amr` are required: step-up decisions rest on them, and a default (e.g.
# auth_time = iat) would make a renewed token look freshly authenticated.
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "exp", "iat", "nbf", "jti", "typ", "auth_time", "amr"]
# A token's renewal starts in the last fifth of its lifetime (60 s of the default 5 minutes).
RENEWAL_SHARE = 0.2


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    team_id: str | None
    amr: tuple[str, ...]
    auth_time: int
    exp: int
    scope: str | None
    iat: int = 0

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> AccessClaims:
        """Raises InvalidToken when `amr` or `auth_time` is missing or malformed."""
        amr, auth_time = payload.get("amr"), payload.get("auth_time")
        if not isinstance(amr, list) or not amr or not all(isinstance(m, str) and m for m in amr):
            raise InvalidToken()
        if not isinstance(auth_time, int) or isinstance(auth_time, bool) or auth_time > int(payload["iat"]) + 5:
            raise InvalidToken()
        return cls(
            user_id=payload["sub"],
            session_id=payload["sid"],
            team_id=payload.get("tid"),
            amr=tuple(amr),
            auth_time=auth_time,
            exp=int(payload["exp"]),
            scope=payload.get("scp"),
            iat=int(payload["iat"]),
        )

    def renewal_due(self, now: float) -> bool:
        """In the last fifth of the token's lifetime (never less than 1 s before exp)."""
        margin = max((self.exp - self.iat) * RENEWAL_SHARE, 1.0)
        return self.exp - now < margin


class InvalidToken(Exception):
    def __init__(self, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


class TokenVerifier:
    def __init__(
        self,
        fetch_jwks: Callable[[], Awaitable[str]],
        *,
        issuer: str,
        audience: str,
        cache_size: int = 50_000,
        min_refetch_seconds: float = 5.0,
    ) -> None:
        self._fetch = fetch_jwks
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._min_refetch = min_refetch_seconds
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._cache_size = cache_size

    async def refresh_keys(self, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < self._min_refetch:
                return
            document = await self._fetch()
            keyset = jwt.PyJWKSet.from_json(document)
            self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is None:
            try:
                await self.refresh_keys()
            except Exception as exc:  # noqa: BLE001 - sessions down: only known keys verify
                log.warning("jwks_fetch_failed", error=str(exc))
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken()
        return key

    async def verify(self, token: str) -> AccessClaims:
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None:
            if cached.exp <= now:
                self._cache.pop(token, None)
                raise InvalidToken(expired=True)
            self._cache.move_to_end(token)
            return cached
        payload = await self.decode(token)
        claims = AccessClaims.from_payload(payload)  # InvalidToken without amr/auth_time
        self._cache[token] = claims
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    async def decode(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Signature, issuer, audience, type and times checked; raises InvalidToken."""
        if len(token) > 4096:
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken() from None
        if header.get("alg") != "EdDSA" or not isinstance(header.get("kid"), str):
            raise InvalidToken()
        key = await self._key_for(header["kid"])
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=5,
                options={"require": REQUIRED_CLAIMS, "verify_exp": verify_exp},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken(expired=True) from None
        except jwt.PyJWTError:
            raise InvalidToken() from None
        if payload.get("typ") != "access":
            raise InvalidToken()
        return payload
