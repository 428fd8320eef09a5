"""One key per purpose (HKDF with a label): no value computed for one purpose is part of another."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from deelrx_kit import keys
from deelrx_kit.audit_events import keyed_hash
from gateway import csrf
from services.identity.domain import tokens
from services.sessions.domain.sealing import Sealer

SECRET = b"unit-secret-0123456789abcdef-0123456789"


def test_keyed_hash_of_csrf_input_is_no_part_of_the_sessions_csrf_token() -> None:
    session_id = "ses_01hzzzzzzzzzzzzzzzzzzzzzzz"  # lower case: keyed_hash lower-cases its input
    token_hex = base64.urlsafe_b64decode(csrf.token_for(SECRET, session_id) + "=").hex()
    pseudonym = keyed_hash(SECRET, f"csrf:{session_id}").removeprefix("hmac-sha256:")
    assert pseudonym not in token_hex


def test_each_purpose_uses_its_own_key_never_the_root_secret() -> None:
    purposes = [keys.CSRF, keys.IDENTIFIER_HASH, keys.LOGIN_THROTTLE, keys.RATE_LIMIT_KEY]
    derived = {keys.derive_key(SECRET, p) for p in purposes} | {keys.sealing_key(SECRET, "signing-key")}
    assert len(derived) == len(purposes) + 1
    assert SECRET not in derived
    # Identifier pseudonyms differ by purpose: a rate-limit key does not reveal an audit subject.
    email = "ada@example.com"
    assert keyed_hash(SECRET, email) != keyed_hash(SECRET, email, purpose=keys.RATE_LIMIT_KEY)
    assert tokens.account_key(SECRET, email) not in {keyed_hash(SECRET, email).split(":")[1]}


def test_blobs_sealed_before_the_key_module_still_open() -> None:
    """Sealing's derivation is unchanged: a blob sealed with the original formula opens."""
    old_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"deelrx-sessions", info=b"signing-key").derive(SECRET)
    nonce = os.urandom(12)
    blob = b"\x01" + nonce + AESGCM(old_key).encrypt(nonce, b"private key bytes", b"kid_1")
    assert Sealer(SECRET, "signing-key").open(blob, aad=b"kid_1") == b"private key bytes"
