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


SCHEDULE = signing_keys.RotationSchedule(sign_for=timedelta(hours=1), publish_ahead=timedelta(minutes=10))


def test_successor_is_published_ahead_then_activated() -> None:
    step = signing_keys.next_step
    done = signing_keys.RotationStep
    assert step(NOW, None, NOW + timedelta(minutes=49), SCHEDULE) is done.NOTHING
    assert step(NOW, None, NOW + timedelta(minutes=50), SCHEDULE) is done.PUBLISH_NEXT
    published = NOW + timedelta(minutes=50)
    assert step(NOW, published, NOW + timedelta(minutes=59), SCHEDULE) is done.NOTHING
    assert step(NOW, published, NOW + timedelta(minutes=60), SCHEDULE) is done.ACTIVATE_NEXT


def test_overdue_key_still_waits_for_its_successor_to_be_published_long_enough() -> None:
    # The service was down past the due time: the successor is published now, signs only later.
    late = NOW + timedelta(hours=5)
    assert signing_keys.next_step(NOW, None, late, SCHEDULE) is signing_keys.RotationStep.PUBLISH_NEXT
    waiting = signing_keys.next_step(NOW, late, late + timedelta(minutes=9), SCHEDULE)
    assert waiting is signing_keys.RotationStep.NOTHING
    ready = signing_keys.next_step(NOW, late, late + timedelta(minutes=10), SCHEDULE)
    assert ready is signing_keys.RotationStep.ACTIVATE_NEXT


def test_published_successor_is_listed_after_the_active_key() -> None:
    pair = signing_keys.generate()
    active = signing_keys.PublishedKey("key_active", pair.public_raw, True, None)
    successor = signing_keys.PublishedKey("key_next", pair.public_raw, False, None)
    assert [k["kid"] for k in signing_keys.jwks([successor, active], NOW, 300)["keys"]] == ["key_active", "key_next"]
