"""Caller-supplied protobuf Timestamps out of range are a validation_error, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from deelrx_kit import timestamps
from deelrx_kit.errors import DomainError


@pytest.mark.parametrize(
    "seconds,nanos",
    [
        (-(2**63), 0),
        (2**63 - 1, 0),
        (timestamps.MAX_SECONDS + 1, 0),
        (timestamps.MIN_SECONDS - 1, 0),
        (0, -1),
        (0, 10**9),
    ],
)
def test_out_of_range_is_a_validation_error(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    with pytest.raises(DomainError) as caught:
        timestamps.to_datetime(ts, "auth_time")
    assert caught.value.code == "validation_error"
    assert caught.value.violations[0].pointer == "/auth_time"
    fallback = datetime(2026, 1, 1, tzinfo=UTC)
    assert timestamps.to_datetime_or(ts, fallback) == fallback


@pytest.mark.parametrize("seconds", [timestamps.MIN_SECONDS, 0, 1_800_000_000, timestamps.MAX_SECONDS])
def test_the_whole_documented_range_converts(seconds: int) -> None:
    when = timestamps.to_datetime(Timestamp(seconds=seconds, nanos=999_999_999), "t")
    assert (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1) == seconds


def test_to_timestamp_round_trips_an_aware_datetime() -> None:
    when = datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    ts = timestamps.to_timestamp(when)
    assert (ts.seconds, ts.nanos) == (int(when.timestamp()), 250_000_000)
    assert timestamps.to_datetime(ts, "t") == when
