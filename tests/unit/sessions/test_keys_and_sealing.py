from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.sessions.domain import signing_keys
from services.sessions.domain.sealing import Sealer, SealError

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_sealed_blob_opens_only_with_same_secret_purpose_and_binding() -> None:
    sealer = Sealer(b"secret", "signing-key")
    blob = sealer.seal(b"private", aad=b"key_1")
    assert b"private" not in blob
    assert sealer.open(blob, aad=b"key_1") == b"private"
    for other, aad in (
        (Sealer(b"secret", "refresh-successor"), b"key_1"),
        (Sealer(b"other", "signing-key"), b"key_1"),
        (sealer, b"key_2"),
    ):
        with pytest.raises(SealError):
            other.open(blob, aad=aad)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError):
        sealer.open(tampered, aad=b"key_1")


def test_jwk_shape() -> None:
    pair = signing_keys.generate()
    jwk = signing_keys.jwk("key_1", pair.public_raw)
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA" and jwk["use"] == "sig"
    assert jwk["kid"] == "key_1" and "d" not in jwk


def test_retired_key_published_for_twice_the_access_ttl() -> None:
    pair = signing_keys.generate()
    active = signing_keys.PublishedKey("key_new", pair.public_raw, True, None)
    retired = signing_keys.PublishedKey("key_old", pair.public_raw, False, NOW)
    inside = signing_keys.jwks([retired, active], NOW + timedelta(seconds=599), 300)
    assert [k["kid"] for k in inside["keys"]] == ["key_new", "key_old"]
    after = signing_keys.jwks([retired, active], NOW + timedelta(seconds=600), 300)
    assert [k["kid"] for k in after["keys"]] == ["key_new"]


def test_rotation_schedule() -> None:
    assert not signing_keys.due_for_rotation(NOW, NOW + timedelta(days=29))
    assert signing_keys.due_for_rotation(NOW, NOW + timedelta(days=30))
