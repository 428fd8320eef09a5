"""Internal reads over gRPC, as the gateway makes them: identity GetUser, sessions GetSession and
rbac Check, `CONCURRENCY` concurrent callers on one channel. Per RPC: calls/s, p50/p99 and the
service's CPU per call, read from /proc/<pid>/stat (utime + stime) before and after the run, so
the client's own cost is not counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import procs
from bench.stats import spread
from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.grpc_server import channel

CONCURRENCY = 16


@dataclass(frozen=True)
class Member:
    user_id: str
    session_id: str
    team_id: str


async def _one_run(call: Callable[[int], Awaitable[Any]], calls: int, pid: int) -> dict[str, float]:
    samples: list[float] = []
    counter = iter(range(calls))

    async def caller() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - started)

    cpu_before = procs.cpu_seconds(pid)
    begin = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    wall = time.perf_counter() - begin
    cpu = procs.cpu_seconds(pid) - cpu_before
    ordered = sorted(samples)
    return {
        "calls_per_s": round(len(samples) / wall, 1),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 3),
        "service_cpu_ms_per_call": round(cpu / len(samples) * 1000, 4),
    }


async def run(
    addresses: dict[str, str], pids: dict[str, int], members: Sequence[Member], calls: int, runs: int
) -> list[dict[str, Any]]:
    async with (
        channel(addresses["identity"]) as identity_ch,
        channel(addresses["sessions"]) as sessions_ch,
        channel(addresses["rbac"]) as rbac_ch,
    ):
        identity = identity_pb2_grpc.IdentityServiceStub(identity_ch)
        sessions = sessions_pb2_grpc.SessionsServiceStub(sessions_ch)
        rbac = rbac_pb2_grpc.RbacServiceStub(rbac_ch)
        n = len(members)

        async def get_user(i: int) -> Any:
            return await identity.GetUser(identity_pb2.GetUserRequest(user_id=members[i % n].user_id))

        async def get_session(i: int) -> Any:
            return await sessions.GetSession(sessions_pb2.GetSessionRequest(session_id=members[i % n].session_id))

        async def check(i: int) -> Any:
            m = members[i % n]
            return await rbac.Check(
                rbac_pb2.CheckRequest(user_id=m.user_id, team_id=m.team_id, permission="members.read")
            )

        cases = [
            ("identity", "identity GetUser", get_user),
            ("sessions", "sessions GetSession", get_session),
            ("rbac", "rbac Check", check),
        ]
        results = []
        for service, name, call in cases:
            await _one_run(call, max(calls // 5, 50), pids[service])  # warm-up, discarded
            each = [await _one_run(call, calls, pids[service]) for _ in range(runs)]
            results.append(
                {
                    "name": name,
                    "concurrency": CONCURRENCY,
                    "calls": calls,
                    **{key: spread(r[key] for r in each) for key in each[0]},
                    "each_run": each,
                }
            )
        return results
