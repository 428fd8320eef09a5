"""`make bench`: start the suite as `make run` does (temporary data dir, SQLite, embedded NATS
and Redis, production argon2 cost), then measure the paths users wait on through the gateway.

Writes a table to stdout and JSON to bench/results/latest.json. Numbers are from one 2-core
machine and move with whatever else runs on it; compare runs on the same machine only.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx

from bench import pipeline, ratelimit_bench, revocation
from bench.loadgen import RawConnection
from deelrx_kit.settings import SERVICES, Settings
from deploy.local import infra
from deploy.local.launcher import prepare

PASSWORD = "bench mark password 2026"
JSON = {"Content-Type": "application/json"}
RESULTS = Path(__file__).parent / "results" / "latest.json"


def _start(data_dir: Path) -> tuple[Any, str]:
    port = infra.free_port()
    env = {
        "DEELRX_DATA_DIR": str(data_dir),
        "DEELRX_HTTP_PORT": str(port),
        "DEELRX_ADMIN_PORT": str(infra.free_port()),
        "DEELRX_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DEELRX_LOG_LEVEL": "WARNING",
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_IP": "100000",
    }
    for name in SERVICES:
        env[f"DEELRX_{name.upper()}_ADDR"] = f"127.0.0.1:{infra.free_port()}"
        env[f"DEELRX_{name.upper()}_METRICS_PORT"] = str(infra.free_port())
    os.environ.update(env)
    suite = prepare(Settings())
    suite.env.update(env)
    suite.start_infrastructure()
    log = open(data_dir / "suite.log", "wb")
    suite.start_services(stdout=log.fileno())
    suite.wait_healthy(timeout=120)
    return suite, f"http://127.0.0.1:{port}"


def _token_from_mail(mail_dir: Path, email: str) -> str:
    for _ in range(200):
        for path in sorted(mail_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            message = message_from_bytes(path.read_bytes())
            if email in (message["To"] or ""):
                for part in message.walk():
                    if part.get_content_maintype() == "text":
                        found = re.search(r"token=([A-Za-z0-9_\-]+)", part.get_payload(decode=True).decode())
                        if found:
                            return found.group(1)
        time.sleep(0.05)
    raise RuntimeError(f"no verification mail for {email}")


def _summary(name: str, samples: list[float], wall: float, errors: int, concurrency: int) -> dict[str, Any]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    return {
        "name": name,
        "requests": len(samples),
        "concurrency": concurrency,
        "errors": errors,
        "throughput_rps": round(len(samples) / wall, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(samples) * 1000, 2),
    }


async def _load(name: str, base: str, make_request: Any, total: int, concurrency: int, ok: set[int]) -> dict[str, Any]:
    """`concurrency` keep-alive connections sharing `total` requests; latency per request."""
    samples: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors
        conn = RawConnection(base)
        try:
            for i in counter:
                started = time.perf_counter()
                status = await make_request(conn, i)
                samples.append(time.perf_counter() - started)
                if status not in ok:
                    errors += 1
        finally:
            await conn.close()

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _summary(name, samples, time.perf_counter() - begin, errors, concurrency)


async def _run(base: str, mail_dir: Path, users: int, sessions_addr: str) -> list[dict[str, Any]]:
    emails = [f"bench{i}.{int(time.time())}@example.com" for i in range(users)]
    results: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for email in emails:
            r = await client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "Bench"})
            r.raise_for_status()
        for email in emails:
            token = await asyncio.to_thread(_token_from_mail, mail_dir, email)
            (await client.post("/v1/auth/verify-email", json={"token": token})).raise_for_status()

    async def login_body(i: int) -> bytes:
        return json.dumps({"email": emails[i % users], "password": PASSWORD, "token_delivery": "body"}).encode()

    async def login(conn: RawConnection, i: int) -> int:
        return await conn.request("POST", "/v1/auth/login", JSON, await login_body(i))

    results.append(await _load("login (argon2id verify + session + JWT)", base, login, 2 * users, 2, {200}))

    tokens: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for i in range(users):
            r = await client.post("/v1/auth/login", content=await login_body(i), headers=JSON)
            tokens.append(r.json())

    async def me(conn: RawConnection, i: int) -> int:
        # Spread over users so each stays under its starter limit (100/min).
        return await conn.request(
            "GET", "/v1/auth/me", {"Authorization": f"Bearer {tokens[i % users]['access_token']}"}
        )

    results.append(
        await _load(
            "GET /v1/auth/me (Bearer; verify, revocation+rate limit, 3 gRPC calls)", base, me, 60 * users, 16, {200}
        )
    )

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        refresh_tokens = [t["refresh_token"] for t in tokens]
        samples: list[float] = []
        begin = time.perf_counter()
        # Rotation is serial per session: each call needs the previous answer's token.
        for i in range(3 * users):
            started = time.perf_counter()
            r = await client.post("/v1/auth/refresh", json={"refresh_token": refresh_tokens[i % users]})
            samples.append(time.perf_counter() - started)
            refresh_tokens[i % users] = r.json()["refresh_token"]
        results.append(_summary("POST /v1/auth/refresh (rotation)", samples, time.perf_counter() - begin, 0, 1))

    # Fresh users (sessions made directly), so the /me run above does not eat their per-user limit.
    verify_sessions = await revocation.sessions_for_new_users(sessions_addr, 2 * users)

    async def verify(conn: RawConnection, i: int) -> int:
        token = verify_sessions[i % len(verify_sessions)].tokens.access_token
        return await conn.request("GET", "/v1/auth/verify", {"Authorization": f"Bearer {token}"})

    results.append(
        await _load("GET /v1/auth/verify (forward auth; no gRPC, one Redis call)", base, verify, 60 * users, 16, {200})
    )

    async def healthz(conn: RawConnection, i: int) -> int:
        return await conn.request("GET", "/healthz")

    results.append(await _load("GET /healthz (HTTP floor)", base, healthz, 5000, 16, {200}))
    return results


def main() -> int:
    users = int(os.environ.get("BENCH_USERS", "30"))
    with tempfile.TemporaryDirectory(prefix="deelrx-bench-") as tmp:
        data_dir = Path(tmp)
        suite, base = _start(data_dir)
        replica = None
        try:
            results = asyncio.run(_run(base, data_dir / "mail", users, suite.env["DEELRX_SESSIONS_ADDR"]))
            replica, base_b = revocation.start_replica(suite.env, data_dir / "gateway-b.log")
            count = int(os.environ.get("BENCH_REVOCATIONS", "200"))
            results.append(asyncio.run(revocation.propagation(base, base_b, suite.env["DEELRX_SESSIONS_ADDR"], count)))
            # The limiters on the suite's Redis (docs/rate-limits.md; needs the `bench` extra).
            limiters = asyncio.run(ratelimit_bench.run(suite.env["DEELRX_REDIS_URL"]))
        finally:
            if replica is not None:
                replica.terminate()
                replica.wait(15)
            suite.stop()
    # The audit pipeline on both databases (bench/pipeline.py).
    pipeline_results = pipeline.run_pipeline_bench()
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "database": "sqlite",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
        "rate_limiters": limiters,
        "pipeline": pipeline_results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'benchmark':<72} {'n':>6} {'conc':>5} {'rps':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'err':>4}")
    for r in results:
        print(
            f"{r['name']:<72} {r['requests']:>6} {r['concurrency']:>5} {r['throughput_rps']:>8} "
            f"{r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} {r['errors']:>4}"
        )
    ratelimit_bench.print_table(limiters)
    print()
    pipeline.print_results(pipeline_results)
    print(f"\nwritten to {RESULTS}")
    from bench import authz

    authz.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
