"""`make bench` (`python -m bench`) and `make bench-quick` (`python -m bench --quick`).

Starts the suite as `make run` does (temporary data dir, SQLite, embedded NATS and Redis, the
configured argon2id cost) and the peers of bench/peers/ (in `.venv-bench`), and measures in
one run, side by side, with wrk in its own process:

1. authenticated requests: gateway /v1/auth/verify and /v1/auth/me (cookie and Bearer) next
   to bare FastAPI /ping and fastapi-users /users/me (JWT and Redis strategies), 1 and 32
   connections, one worker each;
2. the same with two workers each (two gateway processes on one port, SO_REUSEPORT);
3. internal gRPC reads (bench/read_rpcs.py);
4. login throughput, and authenticated p99 with and without a login storm;
5. resident memory of every process, idle and after the other cases;
6. the authorization, rate limiter, revocation propagation and audit pipeline benchmarks.

Writes bench/results/latest.json, one PNG per case in bench/results/ and the generated section
of docs/benchmarks.md. `--quick` runs every case shorter (a smoke test: nothing about speed is
asserted, but a case that fails fails the run).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx

from bench import authz, httpload, peer_servers, pipeline, procs, ratelimit_bench, read_rpcs, report, revocation
from bench.httpload import FULL, QUICK, Profile, Target
from bench.machine import describe_machine
from bench.read_rpcs import Member
from bench.stats import summarise_runs
from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx_kit.grpc_server import channel
from deelrx_kit.settings import SERVICES, Settings
from deploy.local import infra
from deploy.local.launcher import Suite, prepare

PASSWORD = "bench mark password 2026"
RESULTS_DIR = Path(__file__).parent / "results"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
CONNECTIONS = (1, 32)
STORM_CONNECTIONS = 4  # authenticated requests measured next to the login storm
LOGIN_CONNECTIONS = 4


def _start(data_dir: Path) -> tuple[Suite, str, Any]:
    port = infra.free_port()
    env = {
        "DEELRX_DATA_DIR": str(data_dir),
        "DEELRX_HTTP_PORT": str(port),
        "DEELRX_ADMIN_PORT": str(infra.free_port()),
        "DEELRX_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DEELRX_LOG_LEVEL": "WARNING",
        # Every process binds with SO_REUSEPORT, so a second gateway can join the port later.
        "DEELRX_HTTP_REUSE_PORT": "1",
        # One load generator on one IP: the anonymous per-IP and per-account budgets would measure
        # themselves. Authenticated traffic keeps its limits (enterprise teams, 10,000/min each).
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_IP": "1000000",
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_ACCOUNT": "1000000",
        # The longest allowed lifetime, so no token expires during the run.
        "DEELRX_ACCESS_TOKEN_TTL_SECONDS": "3600",
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
    suite.wait_healthy(timeout=180)
    return suite, f"http://127.0.0.1:{port}", log


def _token_from_mail(mail_dir: Path, email: str) -> str:
    for _ in range(600):
        for path in sorted(mail_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            message = message_from_bytes(path.read_bytes())
            if email in (message["To"] or ""):
                for part in message.walk():
                    if part.get_content_maintype() == "text":
                        payload = part.get_payload(decode=True)
                        found = re.search(r"token=([A-Za-z0-9_\-]+)", payload.decode() if payload else "")
                        if found:
                            return found.group(1)
        time.sleep(0.05)
    raise RuntimeError(f"no verification mail for {email}")


async def _make_users(base: str, mail_dir: Path, identity_addr: str, count: int) -> list[dict[str, str]]:
    """`count` verified users, each owning an enterprise team (10,000 requests/min), each with a
    Bearer session and a cookie session bound to that team."""
    stamp = int(time.time())
    gate = asyncio.Semaphore(4)
    async with channel(identity_addr) as ch:
        identity = identity_pb2_grpc.IdentityServiceStub(ch)

        async def one(i: int) -> dict[str, str]:
            email = f"bench{i}.{stamp}@example.com"
            # A client per user: cookies one user's login sets never reach another user's requests.
            async with gate, httpx.AsyncClient(base_url=base, timeout=60) as client:
                r = await client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "Bench"})
                r.raise_for_status()
                token = await asyncio.to_thread(_token_from_mail, mail_dir, email)
                (await client.post("/v1/auth/verify-email", json={"token": token})).raise_for_status()
                login = {"email": email, "password": PASSWORD, "token_delivery": "body"}
                first = (await client.post("/v1/auth/login", json=login)).raise_for_status().json()
                auth = {"Authorization": f"Bearer {first['access_token']}"}
                team = (await client.post("/v1/teams", json={"name": f"Bench {i}"}, headers=auth)).raise_for_status()
                team_id = team.json()["id"]
                context = common_pb2.RequestContext(user_id=first["user"]["id"], client_ip="127.0.0.1", team_id=team_id)
                await identity.UpdateBilling(
                    identity_pb2.UpdateBillingRequest(context=context, team_id=team_id, plan="enterprise")
                )
                switched = await client.post("/v1/auth/switch-team", json={"team_id": team_id}, headers=auth)
                bearer = switched.raise_for_status().json()
                cookie_login = await client.post("/v1/auth/login", json={**login, "token_delivery": "cookie"})
                cookie = cookie_login.raise_for_status().cookies.get("deelrx_session")
                if not cookie:
                    raise RuntimeError("cookie login set no deelrx_session cookie")
            return {
                "email": email,
                "user_id": first["user"]["id"],
                "team_id": team_id,
                "session_id": bearer["session"]["id"],
                "bearer": bearer["access_token"],
                "cookie": cookie,
            }

        users = list(await asyncio.gather(*(one(i) for i in range(count))))
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for header in (
            {"Authorization": f"Bearer {users[0]['bearer']}"},
            {"Cookie": f"deelrx_session={users[0]['cookie']}"},
        ):
            me = (await client.get("/v1/auth/me", headers=header)).raise_for_status().json()
            if (me["team"] or {}).get("plan") != "enterprise":
                raise RuntimeError(f"bench users are not on the enterprise plan: {me['team']}")
    return users


def _write_credentials(work: Path, users: list[dict[str, str]]) -> dict[str, Path]:
    files = {
        "bearer": work / "gateway-bearer.txt",
        "cookie": work / "gateway-cookie.txt",
        "login": work / "login-bodies.txt",
    }
    files["bearer"].write_text("".join(f"Authorization: Bearer {u['bearer']}\n" for u in users))
    files["cookie"].write_text("".join(f"Cookie: deelrx_session={u['cookie']}\n" for u in users))
    files["login"].write_text(
        "".join(json.dumps({"email": u["email"], "password": PASSWORD, "token_delivery": "body"}) + "\n" for u in users)
    )
    return files


def _http_targets(base: str, creds: dict[str, Path], peers: list[peer_servers.Peer]) -> list[Target]:
    targets = [
        Target("DeelRx gateway", "GET /v1/auth/verify (cookie)", f"{base}/v1/auth/verify", creds["cookie"]),
        Target("DeelRx gateway", "GET /v1/auth/verify (Bearer)", f"{base}/v1/auth/verify", creds["bearer"]),
        Target("DeelRx gateway", "GET /v1/auth/me (cookie)", f"{base}/v1/auth/me", creds["cookie"]),
        Target("DeelRx gateway", "GET /v1/auth/me (Bearer)", f"{base}/v1/auth/me", creds["bearer"]),
    ]
    for peer in peers:
        if peer.module.endswith("ping"):
            targets.append(Target(peer.name, "GET /ping (no auth)", f"{peer.base}/ping"))
        else:
            targets.append(
                Target(peer.name, "GET /users/me (cookie)", f"{peer.base}/users/me", peer.tokens / "cookie.txt")
            )
    return targets


def _http_case(targets: list[Target], workers: int, profile: Profile) -> list[dict[str, Any]]:
    rows = []
    for connections in CONNECTIONS:
        for target in targets:
            row = httpload.measure(target, connections, profile, workers=workers)
            print(report.http_line(row), flush=True)
            rows.append(row)
    return rows


def _logins(base: str, creds: dict[str, Path], profile: Profile) -> dict[str, Any]:
    """Login throughput, and /v1/auth/me (Bearer) p99 alone and next to a login storm."""
    login = Target("DeelRx gateway", "POST /v1/auth/login", f"{base}/v1/auth/login", creds["login"], mode="body")
    me = Target("DeelRx gateway", "GET /v1/auth/me (Bearer)", f"{base}/v1/auth/me", creds["bearer"])
    throughput = httpload.measure(login, LOGIN_CONNECTIONS, replace(profile, seconds=profile.login_seconds), workers=1)
    print(report.http_line(throughput), flush=True)
    alone, stormed, storm_runs = [], [], []
    httpload.run_once(me, STORM_CONNECTIONS, profile.warmup_seconds)
    for _ in range(profile.runs):
        alone.append(httpload.run_once(me, STORM_CONNECTIONS, profile.login_seconds))
        storm = httpload.start_wrk(login, LOGIN_CONNECTIONS, profile.login_seconds + 2)
        time.sleep(1)  # the storm is running before the measured requests start
        stormed.append(httpload.run_once(me, STORM_CONNECTIONS, profile.login_seconds))
        storm_runs.append(httpload.finish_wrk(storm, timeout=profile.login_seconds + 30))
    without = {"request": "GET /v1/auth/me (Bearer), no logins", **summarise_runs(alone)}
    with_storm = {"request": "GET /v1/auth/me (Bearer), during a login storm", **summarise_runs(stormed)}
    storm_summary = {"request": "POST /v1/auth/login storm", **summarise_runs(storm_runs)}
    for row in (without, with_storm, storm_summary):
        row.update(server="DeelRx gateway", workers=1)
    without["connections"] = with_storm["connections"] = STORM_CONNECTIONS
    storm_summary["connections"] = LOGIN_CONNECTIONS
    for row in (without, with_storm, storm_summary):
        print(report.http_line(row), flush=True)
    settings = Settings()
    return {
        "argon2id": {
            "time_cost": settings.argon2_time_cost,
            "memory_cost_kib": settings.argon2_memory_cost_kib,
            "parallelism": settings.argon2_parallelism,
        },
        "login_throughput": throughput,
        "without_storm": without,
        "with_storm": with_storm,
        "storm": storm_summary,
    }


def _pids(suite: Suite, peers: list[peer_servers.Peer]) -> dict[str, int]:
    found = {p.name: p.process.pid for p in suite.infra_procs if p.process is not None}
    found.update({name: proc.pid for name, proc in suite.services.items() if proc.poll() is None})
    for peer in peers:
        pids = peer.pids()
        for i, pid in enumerate(pids):
            found[peer.name if len(pids) == 1 else f"{peer.name} {i + 1}"] = pid
    return found


def _rss(suite: Suite, peers: list[peer_servers.Peer]) -> dict[str, float]:
    out = {}
    for name, pid in _pids(suite, peers).items():
        try:
            out[name] = procs.rss_mib(pid)
        except OSError:
            continue
    return out


def _wait_ready(admin_port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"second gateway exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("second gateway did not become ready")


def run(profile: Profile) -> dict[str, Any]:
    started = time.monotonic()
    machine = describe_machine()
    results: dict[str, Any] = {"profile": profile.name, "machine": machine}
    with tempfile.TemporaryDirectory(prefix="deelrx-bench-") as tmp:
        work = Path(tmp)
        suite, base, log = _start(work)
        peers = peer_servers.make_peers(work, suite.env["DEELRX_REDIS_URL"])
        replica = None
        try:
            t = time.monotonic()
            users = asyncio.run(_make_users(base, work / "mail", suite.env["DEELRX_IDENTITY_ADDR"], profile.users))
            print(f"{len(users)} users with enterprise teams in {time.monotonic() - t:.0f} s", flush=True)
            creds = _write_credentials(work, users)
            for peer in peers:
                peer.seed(profile.users)
                peer.start(workers=1)
            time.sleep(2)
            results["rss_idle_mib"] = _rss(suite, peers)

            targets = _http_targets(base, creds, peers)
            print("\n== case 1: authenticated request, one worker each", flush=True)
            results["case1_http"] = _http_case(targets, 1, profile)

            print("\n== case 3: internal gRPC reads", flush=True)
            members = [Member(u["user_id"], u["session_id"], u["team_id"]) for u in users]
            pids = {name: suite.services[name].pid for name in ("identity", "sessions", "rbac")}
            addresses = {name: suite.env[f"DEELRX_{name.upper()}_ADDR"] for name in pids}
            results["case3_read_rpcs"] = asyncio.run(
                read_rpcs.run(addresses, pids, members, profile.rpc_calls, profile.runs)
            )
            for r in results["case3_read_rpcs"]:
                print(report.rpc_line(r), flush=True)

            print("\n== case 4: logins", flush=True)
            results["case4_login"] = _logins(base, creds, profile)

            print("\n== case 6: rate limiters, revocation propagation", flush=True)
            if profile is QUICK:
                ratelimit_bench.REQUESTS, ratelimit_bench.ROUNDS = 300, 1
            results["ratelimit"] = asyncio.run(ratelimit_bench.run(suite.env["DEELRX_REDIS_URL"]))
            replica, base_b = revocation.start_replica(suite.env, work / "gateway-b.log")
            count = 200 if profile is FULL else 20
            results["revocation"] = asyncio.run(
                revocation.propagation(base, base_b, suite.env["DEELRX_SESSIONS_ADDR"], count)
            )
            replica.terminate()
            replica.wait(15)
            replica = None

            print("\n== case 2: two workers each", flush=True)
            second = suite.start_gateway(1, stdout=log.fileno())
            _wait_ready(int(suite.env["DEELRX_ADMIN_PORT"]) + 1, second)
            for peer in peers:
                peer.stop()
                peer.start(workers=2)
            time.sleep(2)
            targets = _http_targets(base, creds, peers)
            results["case2_http_two_workers"] = _http_case(targets, 2, profile)
            results["rss_after_mib"] = _rss(suite, peers)
        finally:
            if replica is not None:
                replica.terminate()
                replica.wait(15)
            for peer in peers:
                peer.stop()
            suite.stop()
            log.close()
    print("\n== case 6: authorization engines, audit pipeline", flush=True)
    results["authz"] = authz.run(10_000 if profile is FULL else 1_000)
    if profile is QUICK:
        pipeline.ALERT_SAMPLES = 5
    results["pipeline"] = pipeline.run_pipeline_bench(events=pipeline.EVENTS if profile is FULL else 1000)
    results["duration_seconds"] = round(time.monotonic() - started)
    results["goals"] = report.goals(results)
    return results


def main(argv: list[str]) -> int:
    profile = QUICK if "--quick" in argv else FULL
    name = "latest.json" if profile is FULL else "quick.json"
    if "--render" in argv:  # the table and charts again from the last result document, no measuring
        results = json.loads((RESULTS_DIR / name).read_text())
    else:
        results = run(profile)
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / name).write_text(json.dumps(results, indent=2) + "\n")
    section = report.markdown(results)
    print("\n" + section)
    if profile is FULL:
        DOCS.write_text(report.replace_section(DOCS.read_text(), section))
        report.charts(results, RESULTS_DIR)
    else:
        report.charts(results, Path(tempfile.mkdtemp(prefix="deelrx-bench-charts-")))
    print(f"\nwritten to {RESULTS_DIR / name} in {results['duration_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
