from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.sessions.domain import signing_keys
from services.sessions.domain.access_token import AccessGrant, InvalidAccessToken, claims_for, sign, verify

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISS = "https://auth.example.com"


def grant(**overrides: object) -> AccessGrant:
    values: dict[str, object] = {
        "user_id": "usr_1",
        "session_id": "ses_1",
        "team_id": "tm_1",
        "amr": ("pwd", "otp"),
        "auth_time": NOW - timedelta(minutes=3),
        "scope": "",
        "session_expires_at": NOW + timedelta(hours=12),
    }
    values.update(overrides)
    return AccessGrant(**values)  # type: ignore[arg-type]


def keyset() -> tuple[str, object, str]:
    pair = signing_keys.generate()
    kid = "key_test"
    jwks = json.dumps({"keys": [signing_keys.jwk(kid, pair.public_raw)]})
    return kid, signing_keys.private_key(pair.private_raw), jwks


def test_claims_are_exactly_the_contract() -> None:
    claims = claims_for(grant(), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j1")
    assert claims == {
        "iss": ISS,
        "aud": "deelrx",
        "sub": "usr_1",
        "sid": "ses_1",
        "tid": "tm_1",
        "typ": "access",
        "amr": ["pwd", "otp"],
        "auth_time": int((NOW - timedelta(minutes=3)).timestamp()),
        "iat": int(NOW.timestamp()),
        "nbf": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "jti": "j1",
    }


def test_no_team_omits_tid_and_enrollment_adds_scp() -> None:
    claims = claims_for(
        grant(team_id="", scope="mfa_enrollment"), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j"
    )
    assert "tid" not in claims
    assert claims["scp"] == "mfa_enrollment"


def test_token_never_outlives_the_session() -> None:
    ends = NOW + timedelta(seconds=90)
    claims = claims_for(
        grant(session_expires_at=ends), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j"
    )
    assert claims["exp"] == int(ends.timestamp())


def test_sign_and_verify_round_trip() -> None:
    kid, key, jwks = keyset()
    token = sign(claims_for(grant(), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j"), key, kid)
    assert jwt.get_unverified_header(token)["kid"] == kid
    claims = verify(token, jwks, issuer=ISS, audience="deelrx", now=NOW + timedelta(seconds=10))
    assert claims["sid"] == "ses_1"


@pytest.mark.parametrize(
    ("issuer", "audience", "at"),
    [
        ("https://evil.example.com", "deelrx", NOW),
        (ISS, "other", NOW),
        (ISS, "deelrx", NOW + timedelta(seconds=400)),  # expired
        (ISS, "deelrx", NOW - timedelta(seconds=60)),  # not yet valid
    ],
)
def test_verify_refuses_wrong_issuer_audience_or_time(issuer: str, audience: str, at: datetime) -> None:
    kid, key, jwks = keyset()
    token = sign(claims_for(grant(), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j"), key, kid)
    with pytest.raises(InvalidAccessToken):
        verify(token, jwks, issuer=issuer, audience=audience, now=at)


def test_verify_refuses_unknown_kid_and_foreign_key() -> None:
    kid, key, _ = keyset()
    _, _, other_jwks = keyset()  # same kid, different key
    token = sign(claims_for(grant(), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j"), key, kid)
    with pytest.raises(InvalidAccessToken):
        verify(token, other_jwks, issuer=ISS, audience="deelrx", now=NOW)
    with pytest.raises(InvalidAccessToken):
        verify(token, {"keys": []}, issuer=ISS, audience="deelrx", now=NOW)


def test_verify_refuses_missing_claims_and_other_types() -> None:
    kid, key, jwks = keyset()
    claims = claims_for(grant(), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j")
    no_sid = {k: v for k, v in claims.items() if k != "sid"}
    with pytest.raises(InvalidAccessToken):
        verify(sign(no_sid, key, kid), jwks, issuer=ISS, audience="deelrx", now=NOW)
    with pytest.raises(InvalidAccessToken):
        verify(sign({**claims, "typ": "refresh"}, key, kid), jwks, issuer=ISS, audience="deelrx", now=NOW)


def test_verify_refuses_other_algorithms_and_garbage() -> None:
    kid, _, jwks = keyset()
    claims = claims_for(grant(), issuer=ISS, audience="deelrx", now=NOW, ttl_seconds=300, jti="j")
    hs = jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": kid})
    with pytest.raises(InvalidAccessToken):
        verify(hs, jwks, issuer=ISS, audience="deelrx", now=NOW)
    with pytest.raises(InvalidAccessToken):
        verify("not.a.jwt", jwks, issuer=ISS, audience="deelrx", now=NOW)
