"""Ed25519 signing keys: creation, publication window and rotation schedule.

A key's life: *published* (in the JWKS, not signing yet, so every cache has it before the
first token it signs), *active* (the one key that signs), *retired* (no longer signs, stays
published while tokens it signed may live), then dropped. An emergency rotation *withdraws*
the active key instead: it leaves the JWKS at once.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
# A key signs for this long before the service rotates it on its own.
AUTO_ROTATE_AFTER = timedelta(days=30)


@dataclass(frozen=True)
class NewKeyPair:
    private_raw: bytes
    public_raw: bytes


@dataclass(frozen=True)
class PublishedKey:
    kid: str
    public_raw: bytes
    active: bool
    retired_at: datetime | None


def generate() -> NewKeyPair:
    private = Ed25519PrivateKey.generate()
    return NewKeyPair(
        private_raw=private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        ),
        public_raw=private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    )


def private_key(raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def publication_window(access_ttl_seconds: int) -> timedelta:
    """A retired key stays listed while tokens it signed may live, twice over (docs/api.md)."""
    return timedelta(seconds=2 * access_ttl_seconds)


def still_published(key: PublishedKey, now: datetime, access_ttl_seconds: int) -> bool:
    if key.active or key.retired_at is None:
        return True
    return now < key.retired_at + publication_window(access_ttl_seconds)


@dataclass(frozen=True)
class RotationSchedule:
    """A key signs for `sign_for`; its successor is published `publish_ahead` before that."""

    sign_for: timedelta
    publish_ahead: timedelta


class RotationStep(Enum):
    NOTHING = "nothing"
    PUBLISH_NEXT = "publish_next"  # put the successor in the JWKS (it does not sign yet)
    ACTIVATE_NEXT = "activate_next"  # the successor signs; the active key retires


def next_step(
    active_since: datetime, next_published_at: datetime | None, now: datetime, schedule: RotationSchedule
) -> RotationStep:
    """What the scheduled rotation does now. A successor signs only once it has been published
    for `publish_ahead`, also when the service was down when the active key fell due."""
    due_at = active_since + schedule.sign_for
    if next_published_at is None:
        return RotationStep.PUBLISH_NEXT if now >= due_at - schedule.publish_ahead else RotationStep.NOTHING
    if now >= due_at and now >= next_published_at + schedule.publish_ahead:
        return RotationStep.ACTIVATE_NEXT
    return RotationStep.NOTHING


def due_for_rotation(created_at: datetime, now: datetime, max_age: timedelta = AUTO_ROTATE_AFTER) -> bool:
    return now - created_at >= max_age


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(kid: str, public_raw: bytes) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(public_raw), "kid": kid, "alg": ALGORITHM, "use": "sig"}


def jwks(keys: list[PublishedKey], now: datetime, access_ttl_seconds: int) -> dict[str, Any]:
    """Active key first, then retired keys still inside their publication window."""
    shown = [k for k in keys if still_published(k, now, access_ttl_seconds)]
    shown.sort(key=lambda k: (not k.active, -(k.retired_at.timestamp() if k.retired_at else 0.0)))
    return {"keys": [jwk(k.kid, k.public_raw) for k in shown]}
