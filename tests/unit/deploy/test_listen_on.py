"""A server started on a port from free_port that someone else took in the meantime is started
again on another port; any other early exit still fails the caller."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from deploy.local import infra

# A server that exits with an error when its port is in use, as the real ones do.
SERVER = """
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(60)
"""


@pytest.fixture
def taken() -> Iterator[int]:
    """A port someone else has bound (not listening, so nothing answers in the server's place)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def _server(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stderr=subprocess.DEVNULL)


def _listens(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_a_port_taken_before_the_start_is_replaced(taken: int, monkeypatch: pytest.MonkeyPatch) -> None:
    handed = iter([taken])
    real = infra.free_port
    monkeypatch.setattr(infra, "free_port", lambda: next(handed, None) or real())
    started: list[int] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        started.append(port)
        return _server(port)

    port, proc = infra.listen_on(None, start)
    try:
        assert started == [port] and port != taken
        _listens(port)
    finally:
        proc.kill()
        proc.wait()


def test_a_port_taken_while_the_server_starts_is_replaced() -> None:
    holders: list[socket.socket] = []
    started: list[int] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        started.append(port)
        if len(started) == 1:  # someone binds the port just before the server does
            holder = socket.socket()
            holder.bind(("127.0.0.1", port))
            holders.append(holder)
        return _server(port)

    try:
        port, proc = infra.listen_on(None, start)
        try:
            assert len(started) == 2 and port == started[1] != started[0]
            _listens(port)
        finally:
            proc.kill()
            proc.wait()
    finally:
        for holder in holders:
            holder.close()


def test_a_port_the_caller_gave_is_not_replaced(taken: int) -> None:
    started: list[int] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        started.append(port)
        return _server(port)

    with pytest.raises(RuntimeError, match="exited"):
        infra.listen_on(taken, start)
    assert started == [taken]


def test_a_server_that_fails_for_another_reason_is_not_started_again() -> None:
    started: list[int] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        started.append(port)
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    with pytest.raises(RuntimeError, match="exited with 3"):
        infra.listen_on(None, start)
    assert len(started) == 1
