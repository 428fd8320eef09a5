"""Dependency hiccups are told apart from bugs: retryable failures become `unavailable` (503)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc


class FakePgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"pg {sqlstate}")
        self.sqlstate = sqlstate


def wrapped(orig: BaseException) -> BaseException:
    return sa_exc.DBAPIError("UPDATE t", {}, orig)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(),
        TimeoutError(),
        wrapped(FakePgError("40P01")),  # deadlock
        wrapped(FakePgError("40001")),  # serialization failure
        wrapped(FakePgError("57P01")),  # admin shutdown
        wrapped(FakePgError("08006")),  # connection failure
        sa_exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")),
    ],
    ids=repr,
)
def test_retryable_failures_are_transient(error: BaseException) -> None:
    from deelrx_kit.transient import is_transient

    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad"),
        KeyError("k"),
        AssertionError(),
        sa_exc.OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: users")),
        wrapped(FakePgError("23505")),  # unique violation: a bug or a domain case, not a hiccup
        wrapped(FakePgError("42P01")),  # undefined table
    ],
    ids=repr,
)
def test_bugs_are_not_transient(error: BaseException) -> None:
    from deelrx_kit.transient import is_transient

    assert not is_transient(error)


def test_a_cause_chain_is_followed() -> None:
    from deelrx_kit.transient import is_transient

    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as inner:
            raise RuntimeError("while saving") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
