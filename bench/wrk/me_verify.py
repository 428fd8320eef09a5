"""`python -m bench.wrk.me_verify`: wrk against `GET /v1/auth/me` and `GET /v1/auth/verify` with
Bearer tokens rotating over many users (bench/wrk/rotate.lua).

Starts the suite as `make run` does (bench/__main__.py), makes `BENCH_USERS` (120) verified users,
each the owner of its own team on the enterprise plan (so the per-team rate limit never
refuses a benchmark request, and /me answers with a team and permissions), opens one session
per user straight from the sessions service, then runs `wrk -t1 -c32 -d10s` per path and prints
one JSON line per run with the machine's load average.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.__main__ import PASSWORD, _start, _token_from_mail
from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.grpc_server import channel

LUA = Path(__file__).with_name("rotate.lua")  # header mode: one "Authorization: ..." line per user


async def _users(base: str, env: dict[str, str], mail_dir: Path, count: int) -> list[str]:
    """Access tokens, one per new user, each bound to the user's own enterprise team."""
    emails = [f"wrk{i}.{os.getpid()}@example.com" for i in range(count)]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for email in emails:
            r = await client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "Bench"})
            r.raise_for_status()
        for email in emails:
            token = await asyncio.to_thread(_token_from_mail, mail_dir, email)
            (await client.post("/v1/auth/verify-email", json={"token": token})).raise_for_status()
    tokens = []
    async with (
        channel(env["DEELRX_IDENTITY_ADDR"]) as ich,
        channel(env["DEELRX_RBAC_ADDR"]) as rch,
        channel(env["DEELRX_SESSIONS_ADDR"]) as sch,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(ich)
        rbac = rbac_pb2_grpc.RbacServiceStub(rch)
        sessions = sessions_pb2_grpc.SessionsServiceStub(sch)
        for email in emails:
            found = await identity.Authenticate(identity_pb2.AuthenticateRequest(email=email, password=PASSWORD))
            user_id = found.user.id
            team = (await identity.CreateTeam(identity_pb2.CreateTeamRequest(owner_user_id=user_id, name="Wrk"))).team
            await rbac.AddMember(
                rbac_pb2.AddMemberRequest(team_id=team.id, user_id=user_id, role="owner", operation_id=team.id)
            )
            await identity.UpdateBilling(identity_pb2.UpdateBillingRequest(team_id=team.id, plan="enterprise"))
            created = await sessions.CreateSession(
                sessions_pb2.CreateSessionRequest(
                    context=common_pb2.RequestContext(client_ip="127.0.0.1", user_agent="wrk"),
                    user_id=user_id,
                    team_id=team.id,
                    amr=["pwd"],
                )
            )
            tokens.append(created.tokens.access_token)
    return tokens


def _wrk(url: str, tokens_file: Path, seconds: int = 10) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(LUA), url, "--", str(tokens_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "non_2xx": raw["non_2xx"],
        "requests": raw["requests"],
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    users = int(os.environ.get("BENCH_USERS", "120"))
    with tempfile.TemporaryDirectory(prefix="deelrx-wrk-") as tmp:
        data_dir = Path(tmp)
        suite, base = _start(data_dir)
        try:
            tokens = asyncio.run(_users(base, suite.env, data_dir / "mail", users))
            tokens_file = data_dir / "tokens.txt"
            tokens_file.write_text("".join(f"Authorization: Bearer {t}\n" for t in tokens))
            for path in ("/v1/auth/me", "/v1/auth/verify"):
                _wrk(base + path, tokens_file, seconds=3)  # warm-up: JIT-free Python, but caches and pools
                print(json.dumps({"path": path, **_wrk(base + path, tokens_file)}), flush=True)
        finally:
            suite.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
