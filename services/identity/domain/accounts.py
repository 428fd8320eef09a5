"""Email addresses and display names as the identity service accepts them."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from deelrx_kit.errors import DomainError, validation_error

NAME_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 254


@dataclass(frozen=True)
class EmailAddress:
    """`display` keeps the user's local part as typed (domain lower-cased); `normalized`
    is the lower-cased form used for uniqueness and lookups."""

    display: str
    normalized: str


def parse_email(raw: str, pointer: str = "/email") -> EmailAddress:
    if not raw or len(raw) > EMAIL_MAX_LENGTH:
        raise validation_error(pointer, "Enter a valid email address.")
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise validation_error(pointer, "Enter a valid email address.") from exc
    display = f"{result.local_part}@{result.domain.lower()}"
    return EmailAddress(display=display, normalized=display.lower())


def lookup_key(raw: str) -> str:
    """The normalized form for lookups, also for input that is not a valid address (which
    then simply matches no account but still gets counters, like any unknown email)."""
    try:
        return parse_email(raw).normalized
    except DomainError:
        return raw.strip().lower()[:EMAIL_MAX_LENGTH]


def _is_control(c: str) -> bool:
    """Control, format (bidi overrides, zero-width), surrogate and line/paragraph separators."""
    return unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def check_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise validation_error("/name", "Enter your name.")
    if len(name) > NAME_MAX_LENGTH:
        raise validation_error("/name", f"Use at most {NAME_MAX_LENGTH} characters.")
    if any(_is_control(c) for c in name):
        raise validation_error("/name", "The name must not contain control characters.")
    return name


def check_team_name(raw: str) -> str:
    try:
        return check_name(raw)
    except Exception as exc:
        raise validation_error("/name", "Enter a team name of 1 to 100 characters without control characters.") from exc
