"""Application-level encryption at rest: AES-256-GCM under a keyring of named keys.

Several keys can be read, one (the first listed) is used for writing. Each blob names the key
that sealed it, so a key is retired by re-encrypting what it sealed (`reseal`) and then
removing it from the configuration. Each blob is bound to what it belongs to (`aad`, e.g.
"totp:<user id>"), so a blob copied to another row does not open.

Configuration (`DEELRX_ENCRYPTION_KEYS`, or a file named by `DEELRX_ENCRYPTION_KEYS_FILE`):
comma- or newline-separated `kid:base64url(32 bytes)` entries, the active key first.
Development generates one key once under the data directory (mode 0600); production refuses
to start without configured keys.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x02"
_NONCE = 12
_KID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
DEV_KEYRING_FILE = "keyring"


class KeyringError(Exception):
    """A blob that does not open (unknown key, wrong binding, tampered) or a bad configuration."""


@dataclass(frozen=True)
class _Key:
    kid: str
    aead: AESGCM


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyringError("the keyring is empty")
        self._keys: dict[str, _Key] = {}
        for kid, key in keys:
            if not _KID_RE.match(kid):
                raise KeyringError("key ids are 1-32 characters of A-Z a-z 0-9 _ . -")
            if len(key) != 32:
                raise KeyringError(f"key {kid!r} is not 32 bytes (AES-256)")
            if kid in self._keys:
                raise KeyringError(f"key {kid!r} is listed twice")
            self._keys[kid] = _Key(kid, AESGCM(key))
        self.active_kid = keys[0][0]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        entries = [e.strip() for e in re.split(r"[,\n]", spec) if e.strip() and not e.strip().startswith("#")]
        keys: list[tuple[str, bytes]] = []
        for entry in entries:
            kid, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyringError("each key is written kid:base64url(32 bytes)")
            try:
                key = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
            except ValueError as exc:
                raise KeyringError(f"key {kid.strip()!r} is not base64url") from exc
            keys.append((kid.strip(), key))
        return cls(keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        key = self._keys[self.active_kid]
        nonce = os.urandom(_NONCE)
        kid = key.kid.encode()
        header = _VERSION + bytes([len(kid)]) + kid
        return header + nonce + key.aead.encrypt(nonce, plaintext, header + aad)

    def key_id_of(self, blob: bytes) -> str:
        if len(blob) < 2 or blob[:1] != _VERSION or len(blob) < 2 + blob[1] + _NONCE + 16:
            raise KeyringError("malformed blob")
        return blob[2 : 2 + blob[1]].decode("ascii", errors="replace")

    def open(self, blob: bytes, aad: bytes) -> bytes:
        kid = self.key_id_of(blob)
        key = self._keys.get(kid)
        if key is None:
            raise KeyringError(f"blob sealed under unknown key {kid!r}")
        header_len = 2 + blob[1]
        nonce = blob[header_len : header_len + _NONCE]
        try:
            return key.aead.decrypt(nonce, blob[header_len + _NONCE :], blob[:header_len] + aad)
        except InvalidTag as exc:
            raise KeyringError("blob does not open") from exc

    def needs_reseal(self, blob: bytes) -> bool:
        return self.key_id_of(blob) != self.active_kid

    def reseal(self, blob: bytes, aad: bytes) -> bytes:
        """The same plaintext under the active key (unchanged when already under it)."""
        return blob if not self.needs_reseal(blob) else self.seal(self.open(blob, aad), aad)


def new_key_entry(kid: str | None = None) -> str:
    kid = kid or f"k{secrets.token_hex(4)}"
    return f"{kid}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


def load_keyring(*, spec: str, spec_file: str, env: str, data_dir: Path) -> Keyring:
    """From the variable, else the file, else (development only) a generated file."""
    if spec.strip():
        return Keyring.parse(spec)
    if spec_file:
        return Keyring.parse(Path(spec_file).read_text())
    if env == "production":
        raise KeyringError("DEELRX_ENCRYPTION_KEYS or DEELRX_ENCRYPTION_KEYS_FILE must be set in production")
    path = data_dir / DEV_KEYRING_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{DEV_KEYRING_FILE}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key_entry("dev1") + "\n")
        try:
            os.link(tmp, path)  # first writer wins; concurrent starters read the same key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return Keyring.parse(path.read_text())
