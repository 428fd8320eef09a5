"""Redaction of secrets and personal data inside log values and exception text.

Key names catch what a caller logs on purpose (`password=...`); these patterns catch what
arrives by accident: a driver error quoting the statement's parameters or a constraint's key,
a token inside a URL, an argon2 hash, a JWT, an email address in an SMTP error.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

# (trigger, pattern, replacement): a pattern runs only on text containing its trigger, so the
# common log line (ids, paths, numbers) costs a few substring checks, not eight regex scans.
_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # SQLAlchemy's "[parameters: (...)]" tail (hide_parameters is the first line of defence).
    (
        "[parameters:",
        re.compile(r"\[parameters: .*?\](?=\s*(?:\(Background|\[SQL|$))", re.DOTALL),
        "[parameters: [redacted]]",
    ),
    # PostgreSQL constraint details: Key (email_normalized)=(ada@example.com) already exists.
    (
        "Key (",
        re.compile(r"(Key \([^)\n]*\)=\()[^\n]*?(\)\s+(?:already exists|is not present|conflicts))"),
        r"\1[redacted]\2",
    ),
    ("Key (", re.compile(r"(Key \([^)\n]*\)=\()(?!\[redacted\]\))[^\n]*"), r"\1[redacted])"),
    ("$argon2", re.compile(r"\$argon2(?:id|i|d)\$[^\s'\",)\]]*"), REDACTED),
    ("eyJ", re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Refresh tokens: rt_ + 256 random bits (43 base64url characters).
    ("rt_", re.compile(r"\brt_[A-Za-z0-9_-]{40,}"), REDACTED),
    # Secrets in URL query strings, e.g. the links mailed for verification and reset.
    (
        "=",
        re.compile(r"([?&;](?:token|code|password|secret|refresh_token|access_token)=)[^&#\s'\"]+", re.IGNORECASE),
        r"\1[redacted]",
    ),
    ("Bearer", re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    ("Basic", re.compile(r"(Basic\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
)
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
EMAIL_REDACTED = "[email]"


def redact_text(text: str, *, keep_pii: bool = False) -> str:
    for trigger, pattern, replacement in _PATTERNS:
        if trigger in text:
            text = pattern.sub(replacement, text)
    if not keep_pii and "@" in text:
        text = _EMAIL.sub(EMAIL_REDACTED, text)
    return text


def redact_value(value: Any, *, keep_pii: bool = False, depth: int = 0) -> Any:
    """Strings anywhere inside dicts, lists and tuples (e.g. structlog's rendered exception)."""
    if isinstance(value, str):
        return redact_text(value, keep_pii=keep_pii)
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {k: redact_value(v, keep_pii=keep_pii, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, keep_pii=keep_pii, depth=depth + 1) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}", keep_pii=keep_pii)
    return value
