"""Start the peer servers of bench/peers/ in `.venv-bench`, each under uvicorn with the same
number of processes, loop (asyncio) and HTTP parser (httptools) as the gateway, the processes
sharing one port with SO_REUSEPORT as the gateway's do (bench/peers/serve.py)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local import infra

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv-bench" / "bin" / "python"

# name -> module; the fastapi-users peers are seeded before their first start.
PEERS = {
    "FastAPI bare": "bench.peers.ping",
    "fastapi-users JWT": "bench.peers.fastapi_users_jwt",
    "fastapi-users Redis": "bench.peers.fastapi_users_redis",
}


@dataclass
class Peer:
    name: str
    module: str
    env: dict[str, str]
    log: Path
    tokens: Path
    port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    seeded: bool = field(default=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seed(self, users: int) -> None:
        if self.module.endswith("ping") or self.seeded:
            return
        subprocess.run(
            [str(PYTHON), "-m", self.module, "init", str(users), str(self.tokens)],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        self.seeded = True

    def start(self, workers: int, timeout: float = 120) -> None:
        """`workers` processes of bench/peers/serve.py on one port (SO_REUSEPORT)."""
        self.port = infra.free_port()
        logged = self.log.stat().st_size if self.log.exists() else 0
        out = open(self.log, "ab")
        self.procs = [
            subprocess.Popen(
                [str(PYTHON), "-m", "bench.peers.serve", self.module, str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            for _ in range(workers)
        ]
        deadline = time.monotonic() + timeout
        while self.log.read_bytes()[logged:].count(b"Application startup complete") < workers:
            if any(p.poll() is not None for p in self.procs) or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {self.log}")
            time.sleep(0.2)
        infra.wait_for_port(self.port, timeout=timeout)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def peer_redis_url(suite_url: str) -> str:
    """Database 1 of the suite's Redis (the suite uses database 0)."""
    scheme, rest = suite_url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}/1"


def make_peers(work_dir: Path, redis_url: str) -> list[Peer]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PEER_SECRET": "bench-peer-secret-0123456789abcdef",
        # Its own Redis database, next to the suite's data in database 0.
        "PEER_REDIS_URL": peer_redis_url(redis_url),
    }
    env.pop("VIRTUAL_ENV", None)
    peers = []
    for name, module in PEERS.items():
        slug = module.rsplit(".", 1)[1]
        peers.append(
            Peer(
                name,
                module,
                {**env, "PEER_DATABASE": str(work_dir / f"{slug}.db")},
                work_dir / f"{slug}.log",
                work_dir / f"{slug}-tokens",
            )
        )
    return peers
