"""Keyset pagination: newest first by (time, id), with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from deelrx_kit.errors import validation_error

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    """Position after the last item returned: the next page holds items strictly older."""

    time: datetime
    id: str

    def encode(self) -> str:
        micros = (self.time - _EPOCH) // timedelta(microseconds=1)
        raw = json.dumps([micros, self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            micros, item_id = json.loads(raw)
            if not isinstance(micros, int) or not isinstance(item_id, str) or not item_id or len(item_id) > 64:
                raise ValueError("shape")
            return Cursor(_EPOCH + timedelta(microseconds=micros), item_id)
        except (ValueError, TypeError, binascii.Error, OverflowError) as exc:
            raise validation_error("/cursor", "cursor is not valid") from exc


def page_limit(limit: int) -> int:
    if limit == 0:
        return DEFAULT_LIMIT
    if limit < 0 or limit > MAX_LIMIT:
        raise validation_error("/limit", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def decode_cursor(value: str) -> Cursor | None:
    return Cursor.decode(value) if value else None


def check_range(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and until < since:
        raise validation_error("/until", "until must not be before since")


def check_id(pointer: str, value: str) -> None:
    if len(value) > 64 or any(c.isspace() for c in value):
        raise validation_error(pointer, f"{pointer.lstrip('/')} is not a valid id")
