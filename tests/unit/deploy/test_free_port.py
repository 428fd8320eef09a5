"""free_port hands a port out once on the whole machine: parallel test workers and the several
servers one test starts never get the same port, which one of them would then fail to bind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploy.local import infra

REPO = Path(__file__).resolve().parents[3]

# Each process takes its ports from a range far smaller than the real one, so a free_port that
# forgot what it handed out elsewhere would repeat ports almost surely, not by bad luck.
TAKER = """
import json, sys
from pathlib import Path
from deploy.local import infra
infra.RESERVATIONS_DIR = Path(sys.argv[1])
infra._PORT_RANGE = (int(sys.argv[2]), int(sys.argv[3]))
print(json.dumps([infra.free_port() for _ in range(int(sys.argv[4]))]))
"""


def _a_small_range() -> tuple[int, int]:
    """400 ports of the real range, chosen apart from other runs of this test."""
    low = infra._PORT_RANGE[0] + 400 * (os.getpid() % 25)
    return low, low + 399


def test_concurrent_processes_never_receive_the_same_port(tmp_path: Path) -> None:
    low, high = _a_small_range()
    takers = [
        subprocess.Popen(
            [sys.executable, "-c", TAKER, str(tmp_path / "ports"), str(low), str(high), "50"],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    ports: list[int] = []
    for taker in takers:
        out, _ = taker.communicate(timeout=120)
        assert taker.returncode == 0
        ports += json.loads(out)
    assert len(ports) == 200
    assert len(set(ports)) == len(ports), sorted(p for p in ports if ports.count(p) > 1)


def test_concurrent_threads_never_receive_the_same_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(infra, "RESERVATIONS_DIR", tmp_path / "ports")
    monkeypatch.setattr(infra, "_PORT_RANGE", _a_small_range())
    taken: list[list[int]] = [[] for _ in range(4)]

    def take(into: list[int]) -> None:
        into.extend(infra.free_port() for _ in range(50))

    threads = [threading.Thread(target=take, args=(into,)) for into in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ports = [port for into in taken for port in into]
    assert len(ports) == 200 and len(set(ports)) == 200


def _only_free_port(monkeypatch: pytest.MonkeyPatch, directory: Path) -> int:
    """Reservations in `directory`, and a range of one port that nothing listens on."""
    port = next(p for p in range(*_a_small_range()) if infra.port_is_free(p))
    monkeypatch.setattr(infra, "RESERVATIONS_DIR", directory)
    monkeypatch.setattr(infra, "_PORT_RANGE", (port, port))
    return port


def test_a_port_is_not_handed_out_again_while_its_reservation_is_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _only_free_port(monkeypatch, tmp_path / "ports")
    assert infra.free_port() == port
    # The range holds no other port: the next one comes from elsewhere.
    assert infra.free_port() != port


def test_a_stale_reservation_is_reclaimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _only_free_port(monkeypatch, tmp_path / "ports")
    assert infra.free_port() == port
    marker = tmp_path / "ports" / str(port)
    long_ago = time.time() - infra._STALE_SECONDS - 60
    os.utime(marker, (long_ago, long_ago))
    assert infra.free_port() == port
    # Reclaiming renews the reservation.
    assert infra.free_port() != port


def test_a_reserved_port_that_is_in_use_is_not_handed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _only_free_port(monkeypatch, tmp_path / "ports")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert infra.free_port() != port


def test_the_reservation_directory_is_open_to_every_user_but_sticky(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra, "RESERVATIONS_DIR", tmp_path / "ports")
    infra.free_port()
    assert (tmp_path / "ports").stat().st_mode & 0o7777 == 0o1777
