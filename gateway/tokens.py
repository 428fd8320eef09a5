"""Local verification of access tokens against the JWKS published by the sessions service.

The key set is cached in the gateway (and served from that cache at
`/.well-known/jwks.json`). It is fetched again
- periodically (`run_refresh`, every `DEELRX_JWKS_REFRESH_SECONDS`, at most a minute), so a key
  that sessions withdrew (emergency rotation) stops being trusted within that interval;
- when a token names an unknown `kid`, at most once per `min_refetch_seconds`, and after a
  failed fetch only after a growing backoff, so a flood of tokens with random `kid`s costs the
  sessions service (and its database) nothing.
Verified claims are cached per token until the token expires; entries signed by a key that
left the set are dropped with it.
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

from deelrx_kit.periodic import run_every

log = structlog.get_logger("deelrx.gateway.tokens")

# `auth_time` and `amr` are required: step-up decisions rest on them, and a default (e.g.
# auth_time = iat) would make a renewed token look freshly authenticated.
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "exp", "iat", "nbf", "jti", "typ", "auth_time", "amr"]
# A token's renewal starts in the last fifth of its lifetime (60 s of the default 5 minutes).
RENEWAL_SHARE = 0.2
MAX_TOKEN_LENGTH = 4096
LEEWAY_SECONDS = 5
MAX_BACKOFF_SECONDS = 60.0
STARTUP_RETRY_SECONDS = 0.5


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
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch_jwks
        self.issuer = issuer
        self.audience = audience
        self._now = now
        self._monotonic = monotonic
        self._keys: dict[str, Any] = {}
        self._document: str | None = None
        self._attempted_at = -1e18  # monotonic time of the last fetch attempt
        self._failures = 0
        self._min_refetch = min_refetch_seconds
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, tuple[AccessClaims, str]] = OrderedDict()  # token -> (claims, kid)
        self._cache_size = cache_size
        self.fetches = 0  # fetch attempts, for tests and metrics

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def _wait_before_refetch(self) -> float:
        if self._failures == 0:
            return self._min_refetch
        return min(self._min_refetch * 2.0 ** (self._failures - 1), MAX_BACKOFF_SECONDS)

    async def refresh_keys(self, force: bool = False) -> None:
        """Fetch the key set; without `force`, only when the last attempt is old enough."""
        async with self._lock:
            if not force and self._monotonic() - self._attempted_at < self._wait_before_refetch():
                return
            self._attempted_at = self._monotonic()
            self.fetches += 1
            try:
                document = await self._fetch()
                keyset = jwt.PyJWKSet.from_json(document)
            except Exception:
                self._failures += 1
                raise
            self._failures = 0
            keys = {k.key_id: k for k in keyset.keys if k.key_id}
            gone = set(self._keys) - set(keys)
            self._keys = keys
            self._document = document
            if gone:
                for token in [t for t, (_, kid) in self._cache.items() if kid in gone]:
                    del self._cache[token]
                log.info("jwks_keys_withdrawn", kids=sorted(gone))

    async def document(self) -> str:
        """The cached JWKS (fetched once if the cache is empty)."""
        if self._document is None:
            await self.refresh_keys()
        if self._document is None:
            raise RuntimeError("JWKS not loaded")
        return self._document

    async def run_refresh(self, interval_seconds: float, stop: asyncio.Event) -> None:
        """Reload the key set every `interval_seconds` until `stop` is set."""

        def wait() -> float:
            # Until the first set arrives (sessions may start after us), try again soon.
            return interval_seconds if self._document is not None else min(interval_seconds, STARTUP_RETRY_SECONDS)

        # A failed refresh keeps the keys we have; the next round tries again.
        await run_every(wait, lambda: self.refresh_keys(force=True), stop, name="jwks_refresh")

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
        hit = self._cache.get(token)
        if hit is not None:
            claims, kid = hit
            if claims.exp <= self._now() or kid not in self._keys:
                self._cache.pop(token, None)
                if claims.exp <= self._now():
                    raise InvalidToken(expired=True)
            else:
                self._cache.move_to_end(token)
                return claims
        payload, kid = await self._decode(token, verify_exp=True)
        claims = AccessClaims.from_payload(payload)  # InvalidToken without amr/auth_time
        self._cache[token] = (claims, kid)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    async def decode(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Signature, issuer, audience, type and times checked; raises InvalidToken."""
        payload, _ = await self._decode(token, verify_exp=verify_exp)
        return payload

    async def _decode(self, token: str, *, verify_exp: bool) -> tuple[dict[str, Any], str]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken() from None
        kid = header.get("kid")
        if header.get("alg") != "EdDSA" or not isinstance(kid, str) or not 0 < len(kid) <= 64:
            raise InvalidToken()
        key = await self._key_for(kid)
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        if payload.get("typ") != "access":
            raise InvalidToken()
        # Times against the gateway's clock (injectable, so rotation tests can move it).
        now = self._now()
        try:
            exp, nbf, iat = float(payload["exp"]), float(payload["nbf"]), float(payload["iat"])
        except (TypeError, ValueError):
            raise InvalidToken() from None
        # A token issued in the future is refused like one not yet valid (PyJWT's own iat check,
        # turned off above for the injectable clock; found by tests/security/test_jwt_attacks.py).
        if nbf > now + LEEWAY_SECONDS or iat > now + LEEWAY_SECONDS:
            raise InvalidToken()
        if verify_exp and exp <= now - LEEWAY_SECONDS:
            raise InvalidToken(expired=True)
        return payload, kid
