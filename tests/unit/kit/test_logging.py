"""Crash logs must not carry the secrets that were in the crashing frame."""

import json
import logging

import pytest
import structlog

from deelrx_kit.logging import configure_logging


def _login(password: str, refresh_token: str) -> None:
    raise ConnectionError("database went away")


@pytest.fixture
def isolated_logging():
    """configure_logging binds the (captured) stderr; undo it for the tests that follow."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_tracebacks_are_logged_without_local_variables(capsys, isolated_logging) -> None:
    configure_logging("test", "INFO")
    log = structlog.get_logger("crash-test")
    try:
        _login("hunter2-Secret!", "rt_SuperSecretRefreshToken")
    except ConnectionError:
        log.exception("rpc_crashed", password="also-secret")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "hunter2-Secret!" not in line and "rt_SuperSecretRefreshToken" not in line
    assert "also-secret" not in line
    record = json.loads(line)
    assert record["msg"] == "rpc_crashed" and record["password"] == "[redacted]"
    assert "database went away" in json.dumps(record["exception"])  # the traceback itself is kept
