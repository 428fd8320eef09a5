"""TOTP (RFC 6238) for authenticator apps: SHA1, 6 digits, 30 s steps, one step either side.

Pure functions; the caller stores the last accepted time step and refuses any step at or
before it, atomically, so a code works once even inside its window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyotp
import segno

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of the current one
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommended length for SHA1
ISSUER = "DeelRx CRM"
_MAX_INPUT = 64


def new_secret() -> str:
    """A base32 secret of 160 random bits from the OS CSPRNG."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def time_step(now: datetime, step_seconds: int = STEP_SECONDS) -> int:
    return int(now.timestamp()) // step_seconds


def code_at(secret_b32: str, step: int, *, digits: int = DIGITS, digest: Callable[..., Any] = hashlib.sha1) -> str:
    """The code for one time step (RFC 6238 with T = step)."""
    return pyotp.TOTP(secret_b32, digits=digits, digest=digest).generate_otp(step)


def parse_code(raw: str) -> str | None:
    """The code as 6 ASCII digits, spaces removed; None for anything else (letters,
    full-width digits, 5 or 7 digits, empty)."""
    if not raw or len(raw) > _MAX_INPUT:
        return None
    code = raw.replace(" ", "")
    if len(code) != DIGITS or any(c not in "0123456789" for c in code):
        return None
    return code


def matching_step(secret_b32: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step `code` belongs to, within the window and after `last_step`, else None.

    Every candidate is computed and compared in constant time, whatever matches."""
    current = time_step(now)
    found: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        expected = code_at(secret_b32, step)
        if hmac.compare_digest(expected.encode(), code.encode()) and (last_step is None or step > last_step):
            found = step if found is None else found
    return found


def provisioning_uri(secret_b32: str, account_email: str) -> str:
    return pyotp.TOTP(secret_b32, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account_email, issuer_name=ISSUER
    )


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG QR code."""
    return str(segno.make(uri, error="m", micro=False).svg_inline(scale=4, border=2))
