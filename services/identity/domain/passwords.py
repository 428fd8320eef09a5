"""Password policy (docs/api.md "Passwords", NIST SP 800-63B 5.1.1.2).

- The password is normalized to Unicode NFKC; that form is what gets hashed and measured.
- 8 to 256 code points; no trimming, truncation, case folding or composition rules.
- Refused when it is on the shipped common-password list (compared lower-cased).
- Refused when it is built from the email address: after removing one occurrence of the
  whole address (with or without its `+tag`), its local part, the local part without a `+tag`, or the local part
  without separators (`.`, `_`, `-`, `+`), nothing but digits, punctuation, symbols or
  spaces is left (so `alice`, `alice2024`, `Alice!!`, `123alice`, `alice@example.com1`
  are refused for alice@example.com; fragments shorter than 3 characters are ignored).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

from deelrx_kit.errors import validation_error

MIN_LENGTH = 8
MAX_LENGTH = 256
_MIN_FRAGMENT = 3
_COMMON_LIST = Path(__file__).parent / "data" / "common_passwords.txt"


def normalize(password: str) -> str:
    """The form that is checked and hashed."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = _COMMON_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(normalize(line).lower() for line in lines if line and not line.startswith("#"))


def is_common(password: str) -> bool:
    return normalize(password).lower() in common_passwords()


def email_fragments(email: str) -> set[str]:
    """The pieces of an address a password must not be built from."""
    address = email.lower()
    local, _, domain = address.rpartition("@")
    untagged = local.split("+", 1)[0]
    squashed = "".join(c for c in untagged if c not in "._-+")
    candidates = (address, f"{untagged}@{domain}", local, untagged, squashed)
    return {f for f in candidates if len(f) >= _MIN_FRAGMENT}


def _is_filler(text: str) -> bool:
    # Digits, punctuation, symbols and separators: what people append to make a word "strong".
    return all(unicodedata.category(c)[0] in "NPSZ" for c in text)


def is_built_from_email(password: str, email: str) -> bool:
    candidate = normalize(password).lower()
    for fragment in email_fragments(email):
        index = candidate.find(fragment)
        if index >= 0 and _is_filler(candidate[:index] + candidate[index + len(fragment) :]):
            return True
    return False


def check_password(password: str, email: str) -> str:
    """The normalized password, or a validation_error at /password."""
    value = normalize(password)
    length = len(value)
    if length < MIN_LENGTH:
        raise validation_error("/password", f"Use at least {MIN_LENGTH} characters.")
    if length > MAX_LENGTH:
        raise validation_error("/password", f"Use at most {MAX_LENGTH} characters.")
    if is_common(value):
        raise validation_error("/password", "This password is too common; choose another one.")
    if email and is_built_from_email(value, email):
        raise validation_error("/password", "Do not build the password from your email address.")
    return value


def plausible_login_password(password: str) -> str | None:
    """Login input as hashed at sign-up, or None when it could never have been accepted.

    Saves the hasher from absurd inputs without telling the caller anything different.
    """
    value = normalize(password)
    return value if MIN_LENGTH <= len(value) <= MAX_LENGTH else None
