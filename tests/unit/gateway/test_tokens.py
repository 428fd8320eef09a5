"""Access-token verification against a JWKS, with real Ed25519 keys."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.tokens import InvalidToken, TokenVerifier

ISS, AUD = "https://auth.example.com", "deelrx"


def _jwks(*pairs: tuple[str, Ed25519PrivateKey]) -> str:
    keys = []
    for kid, key in pairs:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
    return json.dumps({"keys": keys})


def _token(key: Ed25519PrivateKey, kid: str, **overrides: object) -> str:
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": AUD,
        "sub": "usr_1",
        "sid": "ses_1",
        "typ": "access",
        "amr": ["pwd"],
        "auth_time": now,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j1",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def _verifier(document: dict[str, str]) -> TokenVerifier:
    async def fetch() -> str:
        return document["jwks"]

    return TokenVerifier(fetch, issuer=ISS, audience=AUD, min_refetch_seconds=0)


async def test_valid_token_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = _verifier({"jwks": _jwks(("k1", key))})
    claims = await verifier.verify(_token(key, "k1", tid="tm_1"))
    assert (claims.user_id, claims.session_id, claims.team_id, claims.amr) == ("usr_1", "ses_1", "tm_1", ("pwd",))


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "other"}, {"iss": "https://evil"}, {"typ": "refresh"}, {"sid": None}, {"jti": None}],
)
async def test_wrong_claims_are_refused(overrides: dict[str, object]) -> None:
    key = Ed25519PrivateKey.generate()
    verifier = _verifier({"jwks": _jwks(("k1", key))})
    with pytest.raises(InvalidToken):
        await verifier.verify(_token(key, "k1", **overrides))


async def test_expired_token_is_reported_as_expired() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = _verifier({"jwks": _jwks(("k1", key))})
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(_token(key, "k1", exp=int(time.time()) - 60))
    assert info.value.expired


async def test_foreign_key_and_other_algorithms_are_refused() -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = _verifier({"jwks": _jwks(("k1", key))})
    with pytest.raises(InvalidToken):
        await verifier.verify(_token(stranger, "k1"))
    hs = jwt.encode({"sub": "x"}, "s" * 32, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(InvalidToken):
        await verifier.verify(hs)
    with pytest.raises(InvalidToken):
        await verifier.verify("not a jwt")


async def test_rotated_key_is_fetched_on_unknown_kid() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    document = {"jwks": _jwks(("k1", old))}
    verifier = _verifier(document)
    await verifier.verify(_token(old, "k1"))
    document["jwks"] = _jwks(("k1", old), ("k2", new))
    claims = await verifier.verify(_token(new, "k2", jti="j2"))
    assert claims.session_id == "ses_1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"auth_time": None},
        {"amr": None},
        {"amr": []},
        {"amr": "pwd"},
        {"auth_time": "yesterday"},
        {"auth_time": int(time.time()) + 3600},  # authenticated in the future
    ],
)
async def test_tokens_without_valid_auth_time_and_amr_are_refused(overrides: dict[str, object]) -> None:
    """A missing auth_time must not default to iat: a step-up check would then pass."""
    key = Ed25519PrivateKey.generate()
    verifier = _verifier({"jwks": _jwks(("k1", key))})
    with pytest.raises(InvalidToken):
        await verifier.verify(_token(key, "k1", **overrides))


@pytest.mark.parametrize(("ttl", "renew_from"), [(60, 48), (300, 240), (3600, 2880)])
async def test_renewal_starts_in_the_last_fifth_of_the_token_lifetime(ttl: int, renew_from: int) -> None:
    key = Ed25519PrivateKey.generate()
    verifier = _verifier({"jwks": _jwks(("k1", key))})
    now = int(time.time())
    claims = await verifier.verify(_token(key, "k1", iat=now, nbf=now, auth_time=now, exp=now + ttl))
    assert not claims.renewal_due(now)
    assert not claims.renewal_due(now + renew_from - 1)
    assert claims.renewal_due(now + renew_from + 1)
