"""The project's TOTP code against RFC 6238 Appendix B, and the input rules."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from services.identity.domain import totp

# RFC 6238 Appendix B: the seed is the ASCII string repeated to the hash's length.
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_appendix_b(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    step = totp.time_step(datetime.fromtimestamp(unix_time, UTC))
    for name, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        secret = base64.b32encode(SEEDS[name]).decode()
        assert totp.code_at(secret, step, digits=8, digest=DIGESTS[name]) == expected, (name, unix_time)


def test_secrets_are_160_random_bits() -> None:
    secrets_seen = {totp.new_secret() for _ in range(50)}
    assert len(secrets_seen) == 50
    assert all(len(base64.b32decode(s)) == 20 for s in secrets_seen)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("123456", "123456"),
        ("123 456", "123456"),
        (" 12 34 56 ", "123456"),
        ("12345", None),
        ("1234567", None),
        ("abcdef", None),
        ("\uff11\uff12\uff13\uff14\uff15\uff16", None),  # full-width digits
        ("١٢٣٤٥٦", None),  # Arabic-Indic digits (str.isdigit would accept them)
        ("", None),
        ("12345\n6", None),
        ("1" * 10_000, None),
    ],
)
def test_parse_code(raw: str, parsed: str | None) -> None:
    assert totp.parse_code(raw) == parsed


def test_window_is_one_step_either_side_and_never_at_or_before_the_last_step() -> None:
    secret = totp.new_secret()
    now = datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)
    t = totp.time_step(now)
    for offset in (-1, 0, 1):
        assert totp.matching_step(secret, totp.code_at(secret, t + offset), now, None) == t + offset
    for offset in (-2, 2):
        assert totp.matching_step(secret, totp.code_at(secret, t + offset), now, None) is None
    # Replay guard: a step at or before the last accepted one is refused.
    assert totp.matching_step(secret, totp.code_at(secret, t), now, t) is None
    assert totp.matching_step(secret, totp.code_at(secret, t - 1), now, t) is None
    assert totp.matching_step(secret, totp.code_at(secret, t + 1), now, t) == t + 1


def test_provisioning_uri_and_qr() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "ada@example.com")
    assert uri.startswith("otpauth://totp/DeelRx%20CRM:ada%40example.com?")
    assert f"secret={secret}" in uri and "issuer=DeelRx%20CRM" in uri
    assert totp.qr_svg(uri).startswith("<svg")
