"""Revocation propagation between two gateway replicas, and the forward-auth hot path.

Propagation: for each of N sessions, the session's token is verified (and cached) at
replica B, revoked through replica A (`DELETE /v1/sessions/{id}`), and replica B is polled
until it refuses the token; the delay is from the revoke call's return to B's first refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deploy.local import infra


def start_replica(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = infra.free_port()
    replica_env = {
        **os.environ,
        **env,
        "DEELRX_HTTP_PORT": str(port),
        "DEELRX_ADMIN_PORT": str(infra.free_port()),
    }
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=replica_env, stdout=log, stderr=log)
    infra.wait_for_port(port, proc=proc)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        if httpx.get(f"{base}/readyz").status_code == 200 and httpx.get(f"{base}/.well-known/jwks.json").is_success:
            break
        time.sleep(0.1)
    return proc, base


async def sessions_for_new_users(sessions_addr: str, count: int) -> list[sessions_pb2.CreateSessionResponse]:
    """Sessions straight from the sessions service (one user each, so per-user limits never bite)."""
    async with channel(sessions_addr) as ch:
        stub = sessions_pb2_grpc.SessionsServiceStub(ch)
        created = []
        for _ in range(count):
            created.append(
                await stub.CreateSession(
                    sessions_pb2.CreateSessionRequest(
                        context=common_pb2.RequestContext(client_ip="127.0.0.1", user_agent="bench"),
                        user_id=new_id("usr"),
                        amr=["pwd"],
                    )
                )
            )
        return created


def _pct(ordered: list[float], p: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)


async def propagation(base_a: str, base_b: str, sessions_addr: str, count: int) -> dict[str, Any]:
    created = await sessions_for_new_users(sessions_addr, count)
    delays: list[float] = []
    polls: list[int] = []
    errors = 0
    async with httpx.AsyncClient(base_url=base_a, timeout=10) as a, httpx.AsyncClient(base_url=base_b, timeout=10) as b:
        for s in created:
            auth = {"Authorization": f"Bearer {s.tokens.access_token}"}
            if (await b.get("/v1/auth/verify", headers=auth)).status_code != 200:
                errors += 1
                continue
            if (await a.delete(f"/v1/sessions/{s.session.id}", headers=auth)).status_code != 204:
                errors += 1
                continue
            returned = time.perf_counter()
            n = 0
            while True:
                n += 1
                status = (await b.get("/v1/auth/verify", headers=auth)).status_code
                if status == 401:
                    break
                if time.perf_counter() - returned > 5:
                    errors += 1
                    break
            delays.append(time.perf_counter() - returned)
            polls.append(n)
    ordered = sorted(delays)
    return {
        "name": "revocation propagation: revoke at gateway A -> first 401 at gateway B",
        "requests": len(delays),
        "concurrency": 1,
        "errors": errors,
        "throughput_rps": 0,
        "p50_ms": _pct(ordered, 0.50),
        "p95_ms": _pct(ordered, 0.95),
        "p99_ms": _pct(ordered, 0.99),
        "mean_ms": round(sum(delays) / max(len(delays), 1) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        "refused_on_first_poll": sum(1 for n in polls if n == 1),
    }
