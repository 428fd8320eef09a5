"""Encryption at rest (AES-256-GCM) under keys derived from the process secret (HKDF-SHA256).

Each purpose derives its own key (`info`), and each blob is bound to what it belongs to (`aad`),
so a blob copied to another row or purpose does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deelrx_kit.keys import sealing_key

_NONCE = 12
_VERSION = b"\x01"


class SealError(Exception):
    """A blob that does not open: wrong key, wrong binding or tampered."""


class Sealer:
    def __init__(self, secret: bytes, purpose: str) -> None:
        if not secret:
            raise ValueError("empty secret")
        self._aead = AESGCM(sealing_key(secret, purpose))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
            raise SealError("malformed blob")
        nonce = blob[1 : 1 + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[1 + _NONCE :], aad)
        except InvalidTag as exc:
            raise SealError("blob does not open") from exc
