"""Access tokens: the claims (docs/api.md, "Tokens and sessions"), signing and offline verification.

Verification lives here too so the gateway (and any service verifying offline) uses the
exact same rules as the issuer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.sessions.domain.signing_keys import ALGORITHM

TYPE = "access"
MFA_ENROLLMENT_SCOPE = "mfa_enrollment"
REQUIRED_CLAIMS = ("exp", "iat", "nbf", "sub", "sid", "jti", "iss", "aud")
DEFAULT_LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class AccessGrant:
    """What an access token says about its session."""

    user_id: str
    session_id: str
    team_id: str
    amr: Sequence[str]
    auth_time: datetime
    scope: str
    session_expires_at: datetime


def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def claims_for(
    grant: AccessGrant, *, issuer: str, audience: str, now: datetime, ttl_seconds: int, jti: str
) -> dict[str, Any]:
    """The claims of one access token; it never outlives the session's absolute expiry."""
    exp = min(now + timedelta(seconds=ttl_seconds), grant.session_expires_at)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": grant.user_id,
        "sid": grant.session_id,
        "typ": TYPE,
        "amr": list(grant.amr),
        "auth_time": _epoch(grant.auth_time),
        "iat": _epoch(now),
        "nbf": _epoch(now),
        "exp": _epoch(exp),
        "jti": jti,
    }
    if grant.team_id:
        claims["tid"] = grant.team_id
    if grant.scope == MFA_ENROLLMENT_SCOPE:
        claims["scp"] = MFA_ENROLLMENT_SCOPE
    return claims


def sign(claims: Mapping[str, Any], key: Ed25519PrivateKey, kid: str) -> str:
    return jwt.encode(dict(claims), key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})


class InvalidAccessToken(Exception):
    """Bad signature, unknown key, wrong issuer/audience/type, expired or malformed."""


def verify(
    token: str,
    jwks: str | Mapping[str, Any],
    *,
    issuer: str,
    audience: str,
    leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The verified claims of an access token, or InvalidAccessToken.

    `jwks` is the JSON (or parsed dict) served by GetJwks / `/.well-known/jwks.json`. An
    unknown `kid` fails: the caller may refetch the JWKS once and try again.
    """
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise InvalidAccessToken("unexpected header")
        keys = json.loads(jwks) if isinstance(jwks, str) else dict(jwks)
        for entry in keys.get("keys", []):
            if entry.get("kid") == kid:
                key = jwt.PyJWK.from_dict(entry, algorithm=ALGORITHM)
                break
        else:
            raise InvalidAccessToken("unknown key id")
        options: dict[str, Any] = {"require": list(REQUIRED_CLAIMS)}
        if now is not None:
            # For tests and replays: judge time claims at `now` instead of the wall clock.
            options.update(verify_exp=False, verify_nbf=False, verify_iat=False)
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway_seconds,
            options=options,  # type: ignore[arg-type]
        )
    except InvalidAccessToken:
        raise
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise InvalidAccessToken(str(exc)) from exc
    if claims.get("typ") != TYPE:
        raise InvalidAccessToken("not an access token")
    if now is not None:
        moment = now.timestamp()
        if claims["exp"] <= moment - leeway_seconds or claims["nbf"] > moment + leeway_seconds:
            raise InvalidAccessToken("token not valid at this time")
    return claims
