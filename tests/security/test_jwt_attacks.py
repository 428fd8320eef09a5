"""Forged, altered and misused access tokens.

The claim-level attacks (wrong typ/aud/iss, expired, future, missing claims) need a key the
verifier trusts, so they run against both verifiers the product ships (the gateway's
`TokenVerifier` and the sessions service's offline `verify`) with a key this test made and
published in a JWKS. The header-level attacks (alg none, HS256 keyed with the public key, kid
tricks, embedded keys) and token misuse (refresh, email and query-string tokens) run against
the live gateway with its real keys."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.tokens import InvalidToken, TokenVerifier
from services.sessions.domain import access_token
from services.sessions.domain.signing_keys import jwk as public_jwk
from tests.security.conftest import LiveSuite, bearer, bearer_account

ISSUER = "https://auth.example.test"
AUDIENCE = "deelrx"
KID = "key-2026-a"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def good_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "usr_victim",
        "sid": "ses_victim",
        "typ": "access",
        "amr": ["pwd"],
        "auth_time": now,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "jti_1",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature) if signature else "")
    )


def hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    # PyJWT refuses to use PEM/JWK-looking strings as HMAC secrets (the classic defence), so sign by hand.
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def header_attacks(trusted_kid: str, public_raw: bytes, claims: dict[str, Any]) -> dict[str, str]:
    """Tokens an attacker can make without the private key, by name."""
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = public_jwk(trusted_kid, raw_public(attacker))
    pem = Ed25519PublicKey.from_public_bytes(public_raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def signed_by_attacker(**header: Any) -> str:
        return jwt.encode(claims, attacker, algorithm="EdDSA", headers=header)

    attacks: dict[str, str] = {}
    for alg in ("none", "None", "NONE", "nOnE"):
        attacks[f"alg {alg}"] = unsigned({"alg": alg, "typ": "JWT", "kid": trusted_kid}, claims)
        attacks[f"alg {alg} with a signature"] = unsigned(
            {"alg": alg, "typ": "JWT", "kid": trusted_kid}, claims, b"\x00" * 64
        )
    attacks["no alg"] = unsigned({"typ": "JWT", "kid": trusted_kid}, claims, b"\x00" * 64)
    attacks["HS256 keyed with the raw public key"] = hs256_with(public_raw, claims, trusted_kid)
    attacks["HS256 keyed with the PEM public key"] = hs256_with(pem, claims, trusted_kid)
    attacks["HS256 keyed with the JWK x"] = hs256_with(b64(public_raw).encode(), claims, trusted_kid)
    attacks["ES256 named"] = unsigned({"alg": "ES256", "kid": trusted_kid}, claims, b"\x01" * 64)
    attacks["trusted kid, attacker signature"] = signed_by_attacker(kid=trusted_kid)
    attacks["unknown kid"] = signed_by_attacker(kid="kid-that-does-not-exist")
    for kid in ("../../../../../../dev/null", "/etc/passwd", "file:///dev/null", "' OR '1'='1", "", "\u0000"):
        attacks[f"path-like kid {kid!r}"] = signed_by_attacker(kid=kid)
    attacks["kid not a string"] = unsigned({"alg": "EdDSA", "kid": 1}, claims, b"\x00" * 64)
    attacks["no kid"] = signed_by_attacker()
    attacks["embedded jwk"] = signed_by_attacker(kid=trusted_kid, jwk=attacker_jwk)
    attacks["embedded jwk, no kid"] = signed_by_attacker(jwk=attacker_jwk)
    attacks["jku to the attacker"] = signed_by_attacker(kid="attacker", jku="https://evil.example/jwks.json")
    attacks["x5u to the attacker"] = signed_by_attacker(kid="attacker", x5u="https://evil.example/cert.pem")
    attacks["x5c chain"] = signed_by_attacker(kid="attacker", x5c=["MIIB"])
    attacks["crit extension"] = signed_by_attacker(kid="attacker", crit=["exp"])
    attacks["garbage"] = "not.a.jwt"
    attacks["empty segments"] = ".."
    attacks["oversized"] = "a" * 5000 + ".b.c"
    return attacks


def claim_attacks(sign: Callable[[dict[str, Any]], str]) -> dict[str, str]:
    """Tokens signed by a trusted key whose claims must still be refused."""
    now = int(time.time())
    cases: dict[str, dict[str, Any]] = {}
    for typ in ("refresh", "mfa", "email", "email_verification", "ACCESS", "access ", "", None):
        cases[f"typ {typ!r}"] = good_claims(typ=typ)
    for aud in (AUDIENCE + "x", "x" + AUDIENCE, AUDIENCE.upper(), "", ["other"], None):
        cases[f"aud {aud!r}"] = good_claims(aud=aud)
    for iss in (ISSUER + ".evil.example", ISSUER + "/", "https://evil.example", ISSUER.replace("https", "http"), None):
        cases[f"iss {iss!r}"] = good_claims(iss=iss)
    cases["expired"] = good_claims(exp=now - 60, iat=now - 400, nbf=now - 400, auth_time=now - 400)
    cases["not yet valid"] = good_claims(nbf=now + 120, iat=now + 120, auth_time=now + 120, exp=now + 400)
    cases["issued in the future"] = good_claims(iat=now + 3600, exp=now + 3900, auth_time=now + 3600)
    for claim in ("sub", "sid", "exp", "iat", "nbf", "jti"):
        cases[f"no {claim}"] = good_claims(**{claim: None})
    return {name: sign(claims) for name, claims in cases.items()}


@pytest.fixture(scope="module")
def trusted() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    return key, json.dumps({"keys": [public_jwk(KID, raw_public(key))]})


def _verifiers(jwks: str) -> dict[str, Callable[[str], Any]]:
    gateway_verifier = TokenVerifier(lambda: asyncio.sleep(0, jwks), issuer=ISSUER, audience=AUDIENCE)

    def gateway(token: str) -> Any:
        return asyncio.run(gateway_verifier.verify(token))

    def offline(token: str) -> Any:
        return access_token.verify(token, jwks, issuer=ISSUER, audience=AUDIENCE)

    return {"gateway": gateway, "offline": offline}


@pytest.mark.parametrize("which", ["gateway", "offline"])
def test_verifiers_refuse_every_forgery_and_misuse(trusted: tuple[Ed25519PrivateKey, str], which: str) -> None:
    key, jwks = trusted
    verify = _verifiers(jwks)[which]
    assert verify(jwt.encode(good_claims(), key, algorithm="EdDSA", headers={"kid": KID}))  # the control passes
    tokens = header_attacks(KID, raw_public(key), good_claims())
    tokens.update(claim_attacks(lambda c: jwt.encode(c, key, algorithm="EdDSA", headers={"kid": KID})))
    accepted = []
    for name, token in tokens.items():
        try:
            verify(token)
        except (InvalidToken, access_token.InvalidAccessToken):
            continue
        accepted.append(name)
    assert accepted == [], f"{which} accepted: {accepted}"


# ---------------------------------------------------------------- against the live gateway


def _live_material(suite: LiveSuite) -> tuple[str, bytes, dict[str, Any], Any]:
    account = bearer_account(suite)
    jwks = httpx.get(suite.base_url + "/.well-known/jwks.json").json()
    key = jwks["keys"][0]
    public_raw = base64.urlsafe_b64decode(key["x"] + "==")
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    return key["kid"], public_raw, claims, account


@pytest.mark.e2e
@pytest.mark.parametrize("suite", ["sqlite"], indirect=True)
def test_live_gateway_refuses_forged_tokens(suite: LiveSuite) -> None:
    kid, public_raw, claims, account = _live_material(suite)
    with suite.client() as c:
        assert c.get("/v1/auth/me", headers=bearer(account.access_token)).status_code == 200  # control
        for name, token in header_attacks(kid, public_raw, claims).items():
            r = c.get("/v1/auth/me", headers=bearer(token))
            assert r.status_code == 401, (name, r.status_code, r.text)
            assert r.json()["code"] in ("unauthenticated", "session_expired"), name
            # The same forgery in the session cookie is refused too (and never renews anything).
            c.cookies.clear()
            r = c.get("/v1/auth/me", headers={"Cookie": f"deelrx_session={token}"})
            assert r.status_code == 401, (name, "cookie", r.status_code)
        # The real signature on altered claims: one byte of the payload changed.
        head, payload, signature = account.access_token.split(".")
        altered = json.loads(base64.urlsafe_b64decode(payload + "=="))
        altered["sub"] = "usr_someone_else"
        forged = f"{head}.{b64(json.dumps(altered).encode())}.{signature}"
        assert c.get("/v1/auth/me", headers=bearer(forged)).status_code == 401
        # Still works afterwards: the attacks did not poison the verified-token cache.
        assert c.get("/v1/auth/me", headers=bearer(account.access_token)).status_code == 200


@pytest.mark.e2e
@pytest.mark.parametrize("suite", ["sqlite"], indirect=True)
def test_other_tokens_are_not_access_tokens(suite: LiveSuite) -> None:
    account = bearer_account(suite)
    with suite.client() as c:
        # A refresh token is not an access token, in the header or in the session cookie.
        assert c.get("/v1/auth/me", headers=bearer(account.refresh_token)).status_code == 401
        assert c.get("/v1/auth/me", headers={"Cookie": f"deelrx_session={account.refresh_token}"}).status_code == 401
        c.cookies.clear()
        # An email verification token neither.
        email = "eve." + account.email
        mark = suite.mailbox.mark()
        assert c.post("/v1/auth/signup", json={"email": email, "password": "p" * 12 + "Qx!", "name": "E"}).status_code
        token = suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
        assert c.get("/v1/auth/me", headers=bearer(token)).status_code == 401
        # An access token is not a refresh token.
        r = c.post("/v1/auth/refresh", json={"refresh_token": account.access_token[:512]})
        assert r.status_code in (401, 422), r.text


@pytest.mark.e2e
@pytest.mark.parametrize("suite", ["sqlite"], indirect=True)
def test_tokens_in_the_query_string_are_ignored(suite: LiveSuite) -> None:
    """Query strings land in logs, history and Referer headers: never a credential."""
    account = bearer_account(suite)
    with suite.client() as c:
        for name in ("access_token", "token", "jwt", "session", "deelrx_session", "authorization"):
            r = c.get(f"/v1/auth/me?{name}={account.access_token}")
            assert r.status_code == 401, (name, r.text)
        r = c.post(f"/v1/auth/refresh?refresh_token={account.refresh_token}")
        assert r.status_code in (401, 400, 422), r.text
        # ...and the refresh token was not spent by that attempt.
        r = c.post("/v1/auth/refresh", json={"refresh_token": account.refresh_token})
        assert r.status_code == 200, r.text


@pytest.mark.e2e
@pytest.mark.parametrize("suite", ["sqlite"], indirect=True)
def test_malformed_authorization_headers_are_401_not_500(suite: LiveSuite) -> None:
    account = bearer_account(suite)
    with suite.client() as c:
        for value in (
            "Bearer",
            "bearer\tx",
            "Basic dXNlcjpwYXNz",
            f"Token {account.access_token}",
            f"Bearer {account.access_token} extra",
            f"Bearer  {account.access_token}x",
            "Bearer " + "\u00e9" * 10,
            "Bearer " + "a" * 10000,
        ):
            r = c.get("/v1/auth/me", headers={"Authorization": value.encode("utf-8")})
            assert r.status_code == 401, (value[:40], r.status_code, r.text)
