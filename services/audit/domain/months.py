"""Calendar months: the ranges the PostgreSQL events table is partitioned into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class MonthRange:
    start: datetime  # first instant of the month, UTC
    end: datetime  # first instant of the next month


def month_of(when: datetime) -> MonthRange:
    start = when.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return MonthRange(start, end)


def months_around(when: datetime, *, before: int = 1, ahead: int = 2) -> list[MonthRange]:
    """The month of `when` with `before` months back and `ahead` months on, oldest first."""
    month = month_of(when)
    for _ in range(before):
        month = month_of(month.start - timedelta(days=1))
    out = [month]
    for _ in range(before + ahead):
        out.append(month_of(out[-1].end))
    return out
