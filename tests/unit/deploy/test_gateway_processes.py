"""Several gateway processes on one port: SO_REUSEPORT on the listener, and `make run`'s
environment for each process (DEELRX_GATEWAY_PROCESSES)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from deelrx_kit.settings import Settings
from deploy.local.infra import free_port
from deploy.local.launcher import prepare
from gateway.main import reuse_port_socket


def test_two_listeners_share_one_port_only_with_reuse_port() -> None:
    port = free_port()
    first = reuse_port_socket("127.0.0.1", port)
    second = reuse_port_socket("127.0.0.1", port)
    try:
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))  # a listener without the option is refused
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the kernel hands the connection to one of the two
    finally:
        first.close()
        second.close()


def test_one_gateway_process_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEELRX_HTTP_REUSE_PORT", raising=False)
    suite = prepare(Settings(data_dir=tmp_path, admin_port=9180))
    env = suite.gateway_env(0)
    assert "DEELRX_HTTP_REUSE_PORT" not in env
    assert env["DEELRX_ADMIN_PORT"] == "9180"


def test_each_gateway_process_shares_the_port_and_has_its_own_admin_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEELRX_ADMIN_PORT", "9180")
    suite = prepare(Settings(data_dir=tmp_path, gateway_processes=3))
    envs = [suite.gateway_env(i) for i in range(3)]
    assert [e["DEELRX_ADMIN_PORT"] for e in envs] == ["9180", "9181", "9182"]
    assert {e["DEELRX_HTTP_REUSE_PORT"] for e in envs} == {"1"}
    assert {e["DEELRX_GATEWAY_REPLICAS"] for e in envs} == {"3"}


async def test_connections_accepted_on_the_shared_port_have_nagle_off() -> None:
    # Without it, a response written in two parts (headers, then body) waits ~40 ms for the
    # client's delayed ACK: /v1/auth/me took 55 ms instead of a few.
    port = free_port()
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handler, sock=reuse_port_socket("127.0.0.1", port))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
