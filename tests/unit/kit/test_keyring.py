from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deelrx_kit.keyring import Keyring, KeyringError, load_keyring, new_key_entry


def test_seal_open_and_binding() -> None:
    ring = Keyring.parse(new_key_entry("a"))
    blob = ring.seal(b"JBSWY3DPEHPK3PXP", b"totp:usr_1")
    assert b"JBSWY3DPEHPK3PXP" not in blob
    assert ring.open(blob, b"totp:usr_1") == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(KeyringError):
        ring.open(blob, b"totp:usr_2")  # copied to another row
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyringError):
        ring.open(tampered, b"totp:usr_1")


def test_rotation_reads_old_keys_writes_the_active_one_and_reseals() -> None:
    old_entry, new_entry = new_key_entry("old"), new_key_entry("new")
    old_ring = Keyring.parse(old_entry)
    blob = old_ring.seal(b"secret", b"aad")
    ring = Keyring.parse(f"{new_entry},{old_entry}")
    assert ring.active_kid == "new" and ring.needs_reseal(blob)
    resealed = ring.reseal(blob, b"aad")
    assert ring.key_id_of(resealed) == "new" and not ring.needs_reseal(resealed)
    assert Keyring.parse(new_entry).open(resealed, b"aad") == b"secret"
    with pytest.raises(KeyringError):
        Keyring.parse(new_entry).open(blob, b"aad")  # the retired key is gone


_FIXED_KEY = "A" * 43  # 32 zero bytes, base64url: parameter ids must not change between runs


@pytest.mark.parametrize("spec", ["", "nokey", "a:short", f"a:{_FIXED_KEY},a:{_FIXED_KEY}", f"bad id!:{_FIXED_KEY}"])
def test_bad_configuration_is_refused(spec: str) -> None:
    with pytest.raises(KeyringError):
        Keyring.parse(spec)


def test_development_keyring_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_keyring(spec="", spec_file="", env="development", data_dir=tmp_path)
    second = load_keyring(spec="", spec_file="", env="development", data_dir=tmp_path)
    blob = first.seal(b"x", b"")
    assert second.open(blob, b"") == b"x"
    assert stat.S_IMODE((tmp_path / "keyring").stat().st_mode) == 0o600


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    with pytest.raises(KeyringError):
        load_keyring(spec="", spec_file="", env="production", data_dir=tmp_path)
