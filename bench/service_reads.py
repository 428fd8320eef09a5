"""Service CPU per call of a read RPC under concurrent callers.

    .venv/bin/python -m bench.service_reads identity GetUser [--callers 16] [--seconds 5] [--seed 100]

Starts NATS and the one service as its own process (SQLite in a temporary data dir), seeds it
through its own RPCs, then keeps `callers` grpc.aio callers busy for `seconds` and reports
calls/s and the CPU seconds the service process used per call (utime + stime from
/proc/<pid>/stat, so the caller's own CPU is not counted). A case is (service, method) in
CASES: a seed function returning the requests to cycle through.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from email import message_from_bytes
from pathlib import Path
from typing import Any

import grpc

from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx_kit.grpc_server import channel
from deploy.local import infra

Seed = Callable[[grpc.aio.Channel, Path, int], Awaitable[tuple[Callable[[Any], Any], list[Any]]]]
CTX = common_pb2.RequestContext(client_ip="127.0.0.1", user_agent="bench")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def _identity_users(chan: grpc.aio.Channel, data_dir: Path, count: int) -> list[str]:
    stub = identity_pb2_grpc.IdentityServiceStub(chan)
    for i in range(count):
        request = identity_pb2.StartSignupRequest(
            context=CTX, email=f"reader{i}@bench.example", password="bench mark password 2026", name=f"Reader {i}"
        )
        await stub.StartSignup(request)
    tokens: dict[str, str] = {}
    for _ in range(600):  # the mail relay writes one .eml per sign-up
        for path in (data_dir / "mail").glob("*.eml"):
            message = message_from_bytes(path.read_bytes())
            body = next(p for p in message.walk() if p.get_content_type() == "text/plain")
            found = re.search(r"token=([A-Za-z0-9_\-]+)", body.get_payload(decode=True).decode())
            if found:
                tokens[str(message["To"])] = found.group(1)
        if len(tokens) >= count:
            break
        await asyncio.sleep(0.1)
    return [(await stub.VerifyEmail(identity_pb2.VerifyEmailRequest(token=t))).user_id for t in tokens.values()]


async def _get_user(chan: grpc.aio.Channel, data_dir: Path, count: int) -> tuple[Callable[[Any], Any], list[Any]]:
    users = await _identity_users(chan, data_dir, count)
    return identity_pb2_grpc.IdentityServiceStub(chan).GetUser, [identity_pb2.GetUserRequest(user_id=u) for u in users]


async def _get_teams(chan: grpc.aio.Channel, data_dir: Path, count: int) -> tuple[Callable[[Any], Any], list[Any]]:
    stub = identity_pb2_grpc.IdentityServiceStub(chan)
    users = await _identity_users(chan, data_dir, count)
    teams = [
        (await stub.CreateTeam(identity_pb2.CreateTeamRequest(owner_user_id=u, name="Bench"))).team.id for u in users
    ]
    # What the gateway asks: the few teams of one user.
    requests = [identity_pb2.GetTeamsRequest(team_ids=teams[i : i + 3]) for i in range(len(teams))]
    return stub.GetTeams, requests


async def _no_database(chan: grpc.aio.Channel, data_dir: Path, count: int) -> tuple[Callable[[Any], Any], list[Any]]:
    """The floor: GetTeams for ids that cannot be teams is answered without the database."""
    return identity_pb2_grpc.IdentityServiceStub(chan).GetTeams, [identity_pb2.GetTeamsRequest(team_ids=["none"])]


CASES: dict[tuple[str, str], Seed] = {
    ("identity", "GetUser"): _get_user,
    ("identity", "GetTeams"): _get_teams,
    ("identity", "GetTeams-no-database"): _no_database,
}


async def _load(call: Callable[[Any], Any], requests: list[Any], callers: int, seconds: float) -> int:
    done = 0
    stop_at = time.monotonic() + seconds

    async def caller(offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < stop_at:
            await call(requests[i % len(requests)])
            i += 1
            done += 1

    await asyncio.gather(*(caller(n * 7) for n in range(callers)))
    return done


async def _drive(
    seed: Seed, address: str, data_dir: Path, pid: int, callers: int, seconds: float, seed_count: int
) -> tuple[int, float, float]:
    async with channel(address) as chan:
        call, requests = await seed(chan, data_dir, seed_count)
        await _load(call, requests, callers, 1.0)  # warm-up: connections, pools, statement caches
        cpu_before, wall_before = _cpu_seconds(pid), time.monotonic()
        calls = await _load(call, requests, callers, seconds)
        return calls, _cpu_seconds(pid) - cpu_before, time.monotonic() - wall_before


def measure(service: str, method: str, *, callers: int, seconds: float, seed_count: int) -> dict[str, Any]:
    seed = CASES[(service, method)]
    with tempfile.TemporaryDirectory(prefix="deelrx-read-bench-") as tmp:
        data_dir = Path(tmp)
        nats = infra.start_nats(data_dir / "nats")
        port = infra.free_port()
        env = {
            **os.environ,
            "DEELRX_DATA_DIR": str(data_dir),
            "DEELRX_NATS_URL": nats.url,
            f"DEELRX_{service.upper()}_ADDR": f"127.0.0.1:{port}",
            f"DEELRX_{service.upper()}_METRICS_PORT": str(infra.free_port()),
            # Seeding through sign-ups: cheap hashes; the read path does not hash.
            "DEELRX_ARGON2_TIME_COST": "1",
            "DEELRX_ARGON2_MEMORY_COST_KIB": "1024",
        }
        with open(data_dir / f"{service}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", f"services.{service}"], env=env, stdout=log, stderr=log)
        try:
            infra.wait_for_port(port, proc=proc, timeout=60)
            print(f"# {service} pid {proc.pid} (e.g. for py-spy)", file=sys.stderr, flush=True)
            calls, cpu, wall = asyncio.run(
                _drive(seed, f"127.0.0.1:{port}", data_dir, proc.pid, callers, seconds, seed_count)
            )
        finally:
            proc.terminate()
            proc.wait(10)
            nats.stop()
    return {
        "service": service,
        "method": method,
        "callers": callers,
        "calls": calls,
        "calls_per_second": round(calls / wall, 1),
        "service_cpu_ms_per_call": round(cpu / calls * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("service")
    parser.add_argument("method")
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=100, help="users (or other records) to create first")
    args = parser.parse_args()
    result = measure(args.service, args.method, callers=args.callers, seconds=args.seconds, seed_count=args.seed)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
