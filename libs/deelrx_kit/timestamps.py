"""protobuf Timestamps: made from datetimes, and read safely from callers.

`Timestamp.ToDatetime` raises ValueError/OverflowError for seconds outside years 1-9999 or
nanos outside 0..999,999,999, which a servicer would answer as INTERNAL. Found by the gRPC
fuzzer (tests/security/test_fuzz_grpc.py); these helpers turn such input into a
`validation_error` (or, for events from the bus, a fallback time).
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from deelrx_kit.errors import DomainError, Violation

# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, as protobuf's Timestamp documents.
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799


def to_timestamp(dt: datetime) -> Timestamp:
    """The protobuf Timestamp of an aware datetime (every proto time field the suite fills)."""
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def in_range(ts: Timestamp) -> bool:
    return bool(MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos <= 999_999_999)


def to_datetime(ts: Timestamp, field: str) -> datetime:
    """The UTC datetime of a caller's Timestamp, or `validation_error` naming `field`."""
    if not in_range(ts):
        raise DomainError(
            "validation_error", "Timestamp out of range", violations=[Violation(f"/{field}", "out of range")]
        )
    try:
        when: datetime = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):  # e.g. the far edges after a local-time adjustment
        raise DomainError(
            "validation_error", "Timestamp out of range", violations=[Violation(f"/{field}", "out of range")]
        ) from None
    return when


def to_datetime_or(ts: Timestamp, default: datetime) -> datetime:
    """For data that is not a request (events from the bus): out of range falls back to `default`."""
    if not in_range(ts):
        return default
    try:
        when: datetime = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        return default
    return when
