"""The audit pipeline: events/s from publish to stored-and-chained, and the alert delay from
the triggering event to the alert on `security.alerts`, on SQLite and on PostgreSQL.

The audit service and the detector run as their own processes (`python -m services.audit`,
`python -m services.detector`) against a NATS, a Redis and (for PostgreSQL) a database of
their own; the publisher is this process. `python -m bench.pipeline` runs it alone.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from sqlalchemy import func, select

from deelrx.audit.v1 import audit_pb2
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import new_event
from deelrx_kit.db import create_engine
from deelrx_kit.ids import new_id
from deploy.local import infra
from services.audit.adapters import sql

EVENTS = int(os.environ.get("BENCH_PIPELINE_EVENTS", "20000"))
ALERT_SAMPLES = int(os.environ.get("BENCH_ALERT_SAMPLES", "60"))
CHAINS = 20


def _service(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{name}"], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
    )


async def _stored(database_url: str, teams: list[str]) -> int:
    engine = create_engine(database_url, "audit")
    try:
        async with engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sql.events).where(sql.events.c.team_id.in_(teams)))
    except Exception:  # noqa: BLE001 - tables not migrated yet
        n = 0
    await engine.dispose()
    return int(n or 0)


async def _throughput(nats_url: str, database_url: str) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    teams = [new_id("tm") for _ in range(CHAINS)]
    now = datetime.now(UTC)
    events = [
        new_event("customer.updated", source="bench", now=now, team_id=teams[i % CHAINS], details={"n": i})
        for i in range(EVENTS)
    ]
    begin = time.perf_counter()
    for start in range(0, EVENTS, 1000):
        acks = [
            await js.publish_async(
                nats_bus.AUDIT_SUBJECT_PREFIX + e.type, e.SerializeToString(), headers={"Nats-Msg-Id": e.id}
            )
            for e in events[start : start + 1000]
        ]
        await asyncio.gather(*acks)
    published = time.perf_counter() - begin
    while await _stored(database_url, teams) < EVENTS:
        if time.perf_counter() - begin > 600:
            break
        await asyncio.sleep(0.25)
    total = time.perf_counter() - begin
    await nc.close()
    return {
        "name": f"audit pipeline: publish -> stored and chained ({EVENTS} events, {CHAINS} chains)",
        "events": EVENTS,
        "publish_seconds": round(published, 2),
        "total_seconds": round(total, 2),
        "events_per_second": round(EVENTS / total, 1),
    }


async def _alert_delay(nats_url: str) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    arrived: dict[str, float] = {}
    waiting: dict[str, asyncio.Event] = {}

    async def on_alert(msg: Any) -> None:
        alert = audit_pb2.Alert.FromString(msg.data)
        for user in alert.user_ids:
            if user in waiting and alert.rule == "brute_force":
                arrived.setdefault(user, time.perf_counter())
                waiting[user].set()

    await nc.subscribe(nats_bus.ALERTS_SUBJECT, cb=on_alert)
    delays = []
    for _ in range(ALERT_SAMPLES):
        user = new_id("usr")
        waiting[user] = asyncio.Event()
        t0 = datetime.now(UTC)
        failures = [
            new_event(
                "auth.login_failed",
                source="bench",
                now=t0 + timedelta(milliseconds=i),
                actor_user_id=user,
                outcome="failure",
                target=("user", user),
            )
            for i in range(10)
        ]
        for e in failures[:9]:
            await js.publish(
                nats_bus.AUDIT_SUBJECT_PREFIX + e.type, e.SerializeToString(), headers={"Nats-Msg-Id": e.id}
            )
        await asyncio.sleep(0.05)
        last = failures[9]
        sent = time.perf_counter()
        await js.publish(
            nats_bus.AUDIT_SUBJECT_PREFIX + last.type, last.SerializeToString(), headers={"Nats-Msg-Id": last.id}
        )
        try:
            await asyncio.wait_for(waiting[user].wait(), timeout=10)
            delays.append(arrived[user] - sent)
        except TimeoutError:
            delays.append(10.0)
    await nc.close()
    ordered = sorted(delays)
    return {
        "name": f"alert delay: 10th failed login -> brute_force alert ({ALERT_SAMPLES} samples)",
        "samples": len(delays),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def run(database: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="deelrx-bench-pipeline-") as tmp:
        data = Path(tmp)
        procs: list[Any] = [infra.start_nats(data / "nats"), infra.start_redis(data / "redis")]
        if database == "postgres":
            pg = infra.start_postgres(data / "pg")
            procs.append(pg)
            database_url = pg.url
        else:
            database_url = f"sqlite+aiosqlite:///{data / 'audit.db'}"
        env = {
            "DEELRX_DATA_DIR": str(data),
            "DEELRX_NATS_URL": procs[0].url,
            "DEELRX_REDIS_URL": procs[1].url,
            "DEELRX_AUDIT_DATABASE_URL": database_url,
            "DEELRX_AUDIT_ADDR": f"127.0.0.1:{infra.free_port()}",
            "DEELRX_DETECTOR_ADDR": f"127.0.0.1:{infra.free_port()}",
            "DEELRX_AUDIT_METRICS_PORT": str(infra.free_port()),
            "DEELRX_DETECTOR_METRICS_PORT": str(infra.free_port()),
            "DEELRX_SECRET_KEY": "bench-secret-0123456789abcdef-0123456789",
            "DEELRX_LOG_LEVEL": "WARNING",
        }
        services = [_service(name, env, data / f"{name}.log") for name in ("audit", "detector")]
        try:
            infra.wait_for_port(int(env["DEELRX_AUDIT_ADDR"].rsplit(":", 1)[1]), proc=services[0])
            infra.wait_for_port(int(env["DEELRX_DETECTOR_ADDR"].rsplit(":", 1)[1]), proc=services[1])

            async def measure() -> list[dict[str, Any]]:
                nc = await nats.connect(procs[0].url)
                await nats_bus.ensure_streams(nc.jetstream())
                await nc.close()
                await asyncio.sleep(2)  # the services bind their consumers
                delay = await _alert_delay(procs[0].url)
                throughput = await _throughput(procs[0].url, database_url)
                return [throughput, delay]

            results = asyncio.run(measure())
        finally:
            for p in services:
                p.terminate()
                p.wait(timeout=15)
            for proc in reversed(procs):
                proc.stop()
        for r in results:
            r["database"] = database
        return results


def main() -> int:
    for database in ("sqlite", "postgres"):
        for r in run(database):
            print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
