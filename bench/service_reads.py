"""Cost of one service's read RPCs, the service alone: `python -m bench.service_reads [target ...]`.

Each target is one service process (SQLite, plus the real NATS/Redis it needs, started by
deploy/local/infra.py), seeded over gRPC, then called by 16 concurrent grpc.aio callers for
a few seconds on one channel (`make bench`'s bench/read_rpcs.py measures the same reads inside
the whole suite). Reported per target: calls/s, p50/p99 latency as the caller sees
it, and the service process's CPU seconds per call (user + system from /proc/<pid>/stat over
the measured window). A target is a service, a method and a request factory, so another
service's reads are one more entry in TARGETS.

    python -m bench.service_reads                        # every target
    python -m bench.service_reads rbac.Check --seconds 5 # one
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import procs
from deelrx.common.v1 import common_pb2
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.ids import new_id
from deploy.local import infra

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "service_reads.json"
CONCURRENCY = 16

# seed(channel) -> request factory (call index -> request message)
Seed = Callable[[grpc.aio.Channel], Awaitable[Callable[[int], Any]]]


@dataclass(frozen=True)
class Target:
    name: str  # "<service>.<Method>"
    service: str  # python -m services.<service>
    needs: tuple[str, ...]  # "nats", "redis"
    stub: Callable[[grpc.aio.Channel], Any]
    method: str
    seed: Seed


async def _seed_sessions(ch: grpc.aio.Channel) -> Callable[[int], Any]:
    stub = sessions_pb2_grpc.SessionsServiceStub(ch)
    ids = []
    for _ in range(50):
        created = await stub.CreateSession(
            sessions_pb2.CreateSessionRequest(
                context=common_pb2.RequestContext(client_ip="127.0.0.1", user_agent="bench"),
                user_id=new_id("usr"),
                team_id=new_id("tm"),
                amr=["pwd"],
            )
        )
        ids.append(created.session.id)
    requests = [sessions_pb2.GetSessionRequest(session_id=i) for i in ids]
    return lambda n: requests[n % len(requests)]


async def _seed_rbac_team(ch: grpc.aio.Channel) -> tuple[list[str], list[str]]:
    stub = rbac_pb2_grpc.RbacServiceStub(ch)
    teams, users = [], []
    for _ in range(10):
        team = new_id("tm")
        for role in ("owner", "manager", "staff", "staff", "staff"):
            user = new_id("usr")
            await stub.AddMember(
                rbac_pb2.AddMemberRequest(team_id=team, user_id=user, role=role, operation_id=new_id("inv"))
            )
            if role == "staff":
                await stub.AssignCustomer(
                    rbac_pb2.AssignCustomerRequest(team_id=team, customer_id="cus_1", user_id=user)
                )
            teams.append(team)
            users.append(user)
    return teams, users


async def _seed_check(ch: grpc.aio.Channel) -> Callable[[int], Any]:
    teams, users = await _seed_rbac_team(ch)
    permissions = ("customers.read", "customers.write_assigned", "members.manage", "audit.read")
    requests = [
        rbac_pb2.CheckRequest(
            user_id=u, team_id=t, permission=permissions[i % len(permissions)], resource="customer:cus_1"
        )
        for i, (t, u) in enumerate(zip(teams, users, strict=True))
    ]
    return lambda n: requests[n % len(requests)]


async def _seed_membership(ch: grpc.aio.Channel) -> Callable[[int], Any]:
    teams, users = await _seed_rbac_team(ch)
    requests = [rbac_pb2.GetMembershipRequest(user_id=u, team_id=t) for t, u in zip(teams, users, strict=True)]
    return lambda n: requests[n % len(requests)]


async def _seed_nothing(ch: grpc.aio.Channel) -> Callable[[int], Any]:
    request = health_pb2.HealthCheckRequest(service="")
    return lambda n: request


TARGETS = {
    t.name: t
    for t in (
        Target(
            "sessions.GetSession",
            "sessions",
            ("nats", "redis"),
            sessions_pb2_grpc.SessionsServiceStub,
            "GetSession",
            _seed_sessions,
        ),
        # The floor: grpc.aio's own cost per call in the same process (no interceptor, no use case).
        Target("rbac.health.Check", "rbac", ("nats",), health_pb2_grpc.HealthStub, "Check", _seed_nothing),
        Target("rbac.Check", "rbac", ("nats",), rbac_pb2_grpc.RbacServiceStub, "Check", _seed_check),
        Target(
            "rbac.GetMembership", "rbac", ("nats",), rbac_pb2_grpc.RbacServiceStub, "GetMembership", _seed_membership
        ),
    )
}


def start_service(service: str, tmp: Path, infra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = infra.free_port()
    upper = service.upper()
    env = {
        **os.environ,
        **infra_env,
        "DEELRX_DATA_DIR": str(tmp / service),
        f"DEELRX_{upper}_ADDR": f"127.0.0.1:{port}",
        f"DEELRX_{upper}_METRICS_PORT": str(infra.free_port()),
        "DEELRX_SECRET_KEY": "bench-secret-key-0123456789-0123456789",
    }
    (tmp / service).mkdir(parents=True, exist_ok=True)
    log = open(tmp / f"{service}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    infra.wait_for_port(port, proc=proc, timeout=60)
    return proc, f"127.0.0.1:{port}"


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the service over the measured window (collapsed stacks, one line each)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("py-spy is not installed in this environment; no profile", file=sys.stderr)
        return None
    args = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds) + 1), "--rate", "250"]
    args += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def measure(
    target: Target, address: str, pid: int, seconds: float, profile: Path | None = None
) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(address) as channel:
        make = await target.seed(channel)
        call = getattr(target.stub(channel), target.method)
        for n in range(300):  # warm the channel, the caches and the interpreter
            await call(make(n))
        samples: list[int] = []
        counter = iter(range(10**9))
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            for n in counter:
                if time.perf_counter() >= deadline:
                    return
                request = make(n)
                started = time.perf_counter_ns()
                await call(request)
                samples.append(time.perf_counter_ns() - started)

        profiler = start_profiler(pid, seconds, profile) if profile else None
        cpu_before, begin = procs.cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        wall, cpu = time.perf_counter() - begin, procs.cpu_seconds(pid) - cpu_before
        if profiler is not None:
            profiler.wait(30)
    samples.sort()

    def pct(p: float) -> float:
        return round(samples[min(len(samples) - 1, int(p * len(samples)))] / 1e6, 2)

    return {
        "name": target.name,
        "calls": len(samples),
        "calls_per_s": round(len(samples) / wall),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "service_cpu_ms_per_call": round(cpu / len(samples) * 1000, 3),
        "concurrency": CONCURRENCY,
        "seconds": round(wall, 2),
    }


def run(names: list[str], seconds: float, profile_dir: Path | None = None) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="deelrx-bench-reads-") as tmp_name:
        tmp = Path(tmp_name)
        needs = {n for name in names for n in TARGETS[name].needs}
        started: list[infra.Proc] = []
        env: dict[str, str] = {}
        try:
            if "nats" in needs:
                started.append(infra.start_nats(tmp / "nats"))
                env["DEELRX_NATS_URL"] = started[-1].url
            if "redis" in needs:
                started.append(infra.start_redis(tmp / "redis"))
                env["DEELRX_REDIS_URL"] = started[-1].url
            for name in names:
                target = TARGETS[name]
                proc, address = start_service(target.service, tmp / name, env)
                try:
                    profile = profile_dir / f"{name}.txt" if profile_dir else None
                    results.append(asyncio.run(measure(target, address, proc.pid, seconds, profile)))
                finally:
                    proc.terminate()
                    proc.wait(10)
        finally:
            for p in reversed(started):
                p.stop()
    return results


def report(results: list[dict[str, Any]]) -> None:
    print(f"\n{'read RPC':<24} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/call':>12} {'conc':>5}")
    for r in results:
        print(
            f"{r['name']:<24} {r['calls_per_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} "
            f"{r['service_cpu_ms_per_call']:>12} {r['concurrency']:>5}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service_reads", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--profile", type=Path, help="write py-spy collapsed stacks per target to this directory")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = run(args.targets or list(TARGETS), args.seconds, args.profile)
    if not args.no_write:
        RESULTS.write_text(
            json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}, indent=2)
            + "\n"
        )
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
