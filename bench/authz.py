"""The authorization benchmark (`python -m bench.authz`, also part of `make bench`).

Same data and the same 10,000 checks (bench/authz_workload.py) for:
- the in-process decision engine (rbac's `TeamAuthorization.check`, what every Check runs);
- gRPC `Check` against an rbac process (SQLite, NATS), 16 concurrent callers;
- gRPC `BatchCheck`, 100 checks per call;
- pycasbin (RBAC with domains, assignments as a grouping relation), run in the benchmark's own
  environment `.venv-bench` when it exists (`make bench` creates it).
Every engine's decisions are compared with the expected ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench.authz_workload import CHECKS as CHECKS_DEFAULT
from bench.authz_workload import Check, Team, checks, expected, teams
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deploy.local import infra
from services.rbac.domain.team import RoleBinding, TeamAuthorization

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "authz.json"
CASBIN_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
CONCURRENCY = 16
BATCH = 100


def _summary(
    name: str, samples_ns: list[int], wall: float, checks_done: int, wrong: int, **extra: Any
) -> dict[str, Any]:
    ordered = sorted(samples_ns)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1000, 1)

    return {
        "name": name,
        "checks": checks_done,
        "checks_per_s": round(checks_done / wall),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "mean_us": round(statistics.fmean(ordered) / 1000, 1),
        "wrong_decisions": wrong,
        **extra,
    }


def snapshots(data: list[Team]) -> dict[str, TeamAuthorization]:
    now = datetime.now(UTC)
    return {
        t.team_id: TeamAuthorization(
            team_id=t.team_id,
            revision=1,
            members={u: RoleBinding(t.team_id, u, r, now) for u, r in t.roles.items()},
            assignments={u: frozenset(c) for u, c in t.assignments.items()},
        )
        for t in data
    }


def run_engine(data: list[Team], workload: list[Check], wanted: list[bool]) -> dict[str, Any]:
    engine = snapshots(data)
    samples: list[int] = []
    decisions: list[bool] = []
    clock = time.perf_counter_ns
    begin = time.perf_counter()
    for c in workload:
        started = clock()
        decisions.append(engine[c.team_id].check(c.user_id, c.permission, c.resource).allowed)
        samples.append(clock() - started)
    wall = time.perf_counter() - begin
    wrong = sum(a != b for a, b in zip(decisions, wanted, strict=True))
    return _summary("in-process engine (TeamAuthorization.check)", samples, wall, len(workload), wrong, concurrency=1)


def _request(c: Check) -> rbac_pb2.CheckRequest:
    return rbac_pb2.CheckRequest(user_id=c.user_id, team_id=c.team_id, permission=c.permission, resource=c.resource)


async def populate(stub: rbac_pb2_grpc.RbacServiceStub, data: list[Team]) -> None:
    for team in data:
        for user, role in team.roles.items():
            await stub.AddMember(
                rbac_pb2.AddMemberRequest(
                    team_id=team.team_id, user_id=user, role=role, operation_id=f"op_{team.team_id}_{user}"
                )
            )
        for user, customers in team.assignments.items():
            for customer in customers:
                await stub.AssignCustomer(
                    rbac_pb2.AssignCustomerRequest(team_id=team.team_id, customer_id=customer, user_id=user)
                )


async def run_grpc(address: str, workload: list[Check], wanted: list[bool]) -> list[dict[str, Any]]:
    results = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rbac_pb2_grpc.RbacServiceStub(channel)
        for c in workload[:200]:  # warm the channel and the replica's memory
            await stub.Check(_request(c))

        requests = [_request(c) for c in workload]
        samples: list[int] = []
        decisions: dict[int, bool] = {}
        counter = iter(range(len(requests)))

        async def caller() -> None:
            for i in counter:
                started = time.perf_counter_ns()
                reply = await stub.Check(requests[i])
                samples.append(time.perf_counter_ns() - started)
                decisions[i] = reply.allowed

        begin = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - begin
        wrong = sum(decisions[i] != w for i, w in enumerate(wanted))
        results.append(_summary("gRPC Check", samples, wall, len(requests), wrong, concurrency=CONCURRENCY))

        serial: list[int] = []
        begin = time.perf_counter()
        for request in requests[:2000]:
            started = time.perf_counter_ns()
            await stub.Check(request)
            serial.append(time.perf_counter_ns() - started)
        wall = time.perf_counter() - begin
        results.append(_summary("gRPC Check, one caller", serial, wall, len(serial), 0, concurrency=1))

        batches = [requests[i : i + BATCH] for i in range(0, len(requests), BATCH)]
        batch_samples: list[int] = []
        batch_decisions: list[bool] = []
        begin = time.perf_counter()
        for batch in batches:
            started = time.perf_counter_ns()
            reply = await stub.BatchCheck(rbac_pb2.BatchCheckRequest(checks=batch))
            batch_samples.append(time.perf_counter_ns() - started)
            batch_decisions.extend(r.allowed for r in reply.results)
        wall = time.perf_counter() - begin
        wrong = sum(a != b for a, b in zip(batch_decisions, wanted, strict=True))
        summary = _summary(f"gRPC BatchCheck ({BATCH} per call)", batch_samples, wall, len(requests), wrong)
        summary.update(
            {
                "concurrency": 1,
                "latency_is_per": f"call of {BATCH}",
                "per_check_mean_us": round(summary["mean_us"] / BATCH, 2),
            }
        )
        results.append(summary)
    return results


def start_rbac(tmp: Path, nats_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = infra.free_port()
    env = {
        **os.environ,
        "DEELRX_DATA_DIR": str(tmp),
        "DEELRX_NATS_URL": nats_url,
        "DEELRX_RBAC_ADDR": f"127.0.0.1:{port}",
        "DEELRX_RBAC_METRICS_PORT": str(infra.free_port()),
        "DEELRX_LOG_LEVEL": "WARNING",
        "DEELRX_SECRET_KEY": "bench-secret-key-0123456789",
    }
    log = open(tmp / "rbac.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.rbac"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    infra.wait_for_port(port, proc=proc, timeout=60)
    return proc, f"127.0.0.1:{port}"


def run_casbin(wanted: list[bool]) -> dict[str, Any] | None:
    if not CASBIN_PYTHON.exists():
        return None
    out = subprocess.run(
        [str(CASBIN_PYTHON), str(Path(__file__).parent / "authz_casbin.py"), str(len(wanted))],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    found = json.loads(out.stdout)
    wrong = sum(a != b for a, b in zip(found["decisions"], wanted, strict=True))
    return _summary(
        "pycasbin (RBAC with domains, in-process)",
        found["samples_ns"],
        found["wall"],
        len(wanted),
        wrong,
        concurrency=1,
    )


def run(checks_count: int = CHECKS_DEFAULT) -> list[dict[str, Any]]:
    data = teams()
    workload = checks(data, checks_count)
    wanted = [expected(data, c) for c in workload]
    results = [run_engine(data, workload, wanted)]
    with tempfile.TemporaryDirectory(prefix="deelrx-bench-authz-") as tmp_name:
        tmp = Path(tmp_name)
        nats = infra.start_nats(tmp / "nats")
        proc, address = start_rbac(tmp, nats.url)
        try:

            async def grpc_cases() -> list[dict[str, Any]]:
                async with grpc.aio.insecure_channel(address) as channel:
                    await populate(rbac_pb2_grpc.RbacServiceStub(channel), data)
                return await run_grpc(address, workload, wanted)

            results += asyncio.run(grpc_cases())
        finally:
            proc.terminate()
            proc.wait(10)
            nats.stop()
    casbin_result = run_casbin(wanted)
    if casbin_result is not None:
        results.append(casbin_result)
    return results


def report(results: list[dict[str, Any]]) -> None:
    title = "authorization (10 teams, 10,000 checks)"
    print(f"\n{title:<48} {'checks/s':>10} {'p50 us':>9} {'p99 us':>9} {'conc':>5} {'wrong':>6}")
    for r in results:
        print(
            f"{r['name']:<48} {r['checks_per_s']:>10} {r['p50_us']:>9} {r['p99_us']:>9} "
            f"{r.get('concurrency', 1):>5} {r['wrong_decisions']:>6}"
        )
    print("(BatchCheck latency is per call of 100 checks)")


def main() -> int:
    results = run()
    RESULTS.write_text(
        json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}, indent=2) + "\n"
    )
    report(results)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
