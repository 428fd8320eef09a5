from __future__ import annotations

import hashlib

from services.identity.domain import tokens


def test_new_token_has_256_bits_and_only_its_hash_is_stored() -> None:
    token, stored = tokens.new_token()
    assert len(token) >= 43  # 32 bytes, url-safe base64
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored
    assert tokens.new_token()[0] != token


def test_presented_tokens_of_impossible_shapes_match_nothing() -> None:
    token, stored = tokens.new_token()
    assert tokens.presented_hash(token) == stored
    assert tokens.presented_hash("") is None
    assert tokens.presented_hash("x" * 1000) is None
    assert tokens.presented_hash("ü" * 10) is None


def test_account_key_is_keyed_and_stable() -> None:
    a = tokens.account_key(b"k1", "bob@example.com")
    assert a == tokens.account_key(b"k1", "bob@example.com")
    assert a != tokens.account_key(b"k2", "bob@example.com")
    assert "bob" not in a
