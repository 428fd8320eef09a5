"""HTTP load with wrk in its own process: a discarded warm-up, then repeated runs of one target.

A target is a URL plus an optional file of credentials (bench/wrk/rotate.lua sends the next one
with every request). One wrk thread per run: wrk needs a fraction of a core for these rates, and
the rest of the two cores is left to the servers.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import parse_wrk, summarise_runs

SCRIPT = Path(__file__).parent / "wrk" / "rotate.lua"


@dataclass(frozen=True)
class Profile:
    """How long and how often each case runs: `make bench` and `make bench-quick` differ only here."""

    name: str
    runs: int
    seconds: int
    warmup_seconds: int
    login_seconds: int
    rpc_calls: int
    users: int = 120


FULL = Profile("full", runs=3, seconds=3, warmup_seconds=1, login_seconds=8, rpc_calls=3000)
QUICK = Profile("quick", runs=1, seconds=1, warmup_seconds=1, login_seconds=2, rpc_calls=300, users=40)


@dataclass(frozen=True)
class Target:
    server: str
    request: str
    url: str
    credentials: Path | None = None  # header lines for rotate.lua
    mode: str = "header"  # or "body" (one JSON body a line, POST)


def wrk_command(target: Target, connections: int, seconds: int) -> list[str]:
    wrk = shutil.which("wrk") or "wrk"
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", str(SCRIPT)]
    cmd += [target.url, "--", str(target.credentials or "-"), target.mode]
    return cmd


def start_wrk(target: Target, connections: int, seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        wrk_command(target, connections, seconds), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish_wrk(proc: subprocess.Popen[str], timeout: float) -> dict[str, float]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {out[-500:]}")
    return parse_wrk(out)


def run_once(target: Target, connections: int, seconds: int) -> dict[str, float]:
    return finish_wrk(start_wrk(target, connections, seconds), timeout=seconds + 30)


def measure(target: Target, connections: int, profile: Profile, **labels: Any) -> dict[str, Any]:
    """Warm-up (discarded), then `profile.runs` runs; median with min and max."""
    run_once(target, connections, profile.warmup_seconds)
    runs = [run_once(target, connections, profile.seconds) for _ in range(profile.runs)]
    row = {"server": target.server, "request": target.request, "connections": connections, **labels}
    row.update(summarise_runs(runs))
    row["each_run"] = runs
    return row
