"""Which failures mean "a dependency is briefly unavailable" rather than "a bug".

A lost or refused database, Redis or network connection, a PostgreSQL deadlock or serialization
failure, a database that is starting up or shutting down, SQLite's busy lock: the caller should
retry, so the error interceptor answers UNAVAILABLE (the gateway's 503 with `Retry-After`)
instead of INTERNAL. Found by the fault run (tests/security/test_faults.py): with PostgreSQL
killed, logins answered 500.
"""

from __future__ import annotations

# SQLSTATE classes and codes that a retry can cure.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03"})
_RETRYABLE_SQLSTATE_CLASSES = ("08",)  # connection exceptions
_TRANSIENT_NAMES = frozenset(
    {
        # asyncpg
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "TooManyConnectionsError",
        # SQLAlchemy (pool exhausted or a connection dropped under it)
        "DisconnectionError",
        "TimeoutError",
        # redis-py
        "ConnectionError",
        "BusyLoadingError",
    }
)


def _links(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for item in list(seen):
        original = getattr(item, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(original, BaseException) and original not in seen:
            seen.append(original)
    return seen


def is_transient(exc: BaseException) -> bool:
    for item in _links(exc):
        if isinstance(item, OSError):  # refused, reset, unreachable, timed out
            return True
        if getattr(item, "connection_invalidated", False):
            return True
        state = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
        if isinstance(state, str) and (state in _RETRYABLE_SQLSTATES or state.startswith(_RETRYABLE_SQLSTATE_CLASSES)):
            return True
        if type(item).__name__ in _TRANSIENT_NAMES:
            return True
        if "deadlock detected" in str(item) or "database is locked" in str(item):
            return True
    return False
