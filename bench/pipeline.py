"""The audit pipeline: events/s from publish to stored-and-chained, and the alert delay from
the triggering event to the alert on `security.alerts`, on SQLite and on PostgreSQL.

The audit service (AUDIT_REPLICAS replicas, sharing the stream's partitions) and the
detector run as their own processes (`python -m services.audit`, `python -m services.detector`)
against a NATS, a Redis and (for PostgreSQL) a database of their own; the publisher is this
process, publishing as an outbox relay does (asynchronous acknowledgements, a window of them
in flight). `python -m bench.pipeline` runs it alone and writes the `pipeline` key of
bench/results/latest.json; `make bench` calls run_pipeline_bench().
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import procs as proc_stats
from deelrx.audit.v1 import audit_pb2
from deelrx_kit import nats_bus
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.db import READ_ONLY_OPTION, create_engine
from deelrx_kit.ids import new_id
from deploy.local import infra
from services.audit.adapters import sql
from services.detector.domain.rules import RULE_IDS

EVENTS = int(os.environ.get("BENCH_PIPELINE_EVENTS", "20000"))
ALERT_SAMPLES = int(os.environ.get("BENCH_ALERT_SAMPLES", "60"))
AUDIT_REPLICAS = int(os.environ.get("BENCH_AUDIT_REPLICAS", "1"))
CHAINS = 20
PUBLISH_WINDOW = 2000  # acknowledgements in flight, as the outbox relay keeps them
RESULTS = Path(__file__).parent / "results" / "latest.json"


def _service(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{name}"], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
    )


async def _stored(engine: AsyncEngine, teams: list[str]) -> int:
    # Read-only: on SQLite a plain transaction would take the write lock and queue the
    # audit service's writer behind the benchmark's own polling.
    try:
        async with engine.execution_options(**{READ_ONLY_OPTION: True}).connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sql.events).where(sql.events.c.team_id.in_(teams)))
    except Exception:  # noqa: BLE001 - tables not migrated yet
        n = 0
    return int(n or 0)


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    # The publisher (this process) started the others: its tree would count them twice.
    return {
        name: proc_stats.cpu_seconds(pid) if name == "publisher" else proc_stats.tree_cpu_seconds(pid)
        for name, pid in pids.items()
    }


async def _throughput(nats_url: str, database_url: str, events_count: int, pids: dict[str, int]) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    teams = [new_id("tm") for _ in range(CHAINS)]
    now = datetime.now(UTC)
    events = [
        new_event("customer.updated", source="bench", now=now, team_id=teams[i % CHAINS], details={"n": i})
        for i in range(events_count)
    ]
    # Serialized ahead, as an outbox holds them: the clock measures the pipeline, not protobuf.
    staged = [(subject_for(e), e.SerializeToString(), {"Nats-Msg-Id": e.id}) for e in events]
    cpu_before = _cpu(pids)
    begin = time.perf_counter()
    for start in range(0, events_count, PUBLISH_WINDOW):
        acks = [
            await js.publish_async(subject, body, headers=headers)
            for subject, body, headers in staged[start : start + PUBLISH_WINDOW]
        ]
        await asyncio.gather(*acks)
    published = time.perf_counter() - begin
    engine = create_engine(database_url, "audit")
    progress = []
    while (n := await _stored(engine, teams)) < events_count:
        progress.append((round(time.perf_counter() - begin, 1), n))
        if time.perf_counter() - begin > 600:
            break
        await asyncio.sleep(0.1)
    if os.environ.get("BENCH_PROGRESS"):
        print("progress (seconds, stored):", progress[::5])
    total = time.perf_counter() - begin
    # Where the machine's two cores went while the events flowed (the publisher is this process).
    cpu = {name: round(after - cpu_before[name], 2) for name, after in _cpu(pids).items()}
    stored = await _stored(engine, teams)
    await engine.dispose()
    await nc.close()
    return {
        "name": f"audit pipeline: publish -> stored and chained ({events_count} events, {CHAINS} chains)",
        "events": events_count,
        "stored": stored,
        "publish_seconds": round(published, 2),
        "publish_per_second": round(events_count / published, 1),
        "total_seconds": round(total, 2),
        "events_per_second": round(events_count / total, 1),
        "cpu_seconds": cpu,
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
            await js.publish(subject_for(e), e.SerializeToString(), headers={"Nats-Msg-Id": e.id})
        await asyncio.sleep(0.05)
        last = failures[9]
        sent = time.perf_counter()
        await js.publish(subject_for(last), last.SerializeToString(), headers={"Nats-Msg-Id": last.id})
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


def run(database: str, *, events: int = EVENTS, audit_replicas: int = AUDIT_REPLICAS) -> list[dict[str, Any]]:
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
            "DEELRX_DETECTOR_ADDR": f"127.0.0.1:{infra.free_port()}",
            "DEELRX_DETECTOR_METRICS_PORT": str(infra.free_port()),
            "DEELRX_SECRET_KEY": "bench-secret-0123456789abcdef-0123456789",
            "DEELRX_LOG_LEVEL": "WARNING",
            # The automatic responses call identity, sessions and rbac, which this benchmark does
            # not run: each would fail and bring its event back, holding up the detector.
            "DEELRX_DETECTOR_RESPONSES": json.dumps({rule: [] for rule in RULE_IDS}),
        }
        audit_ports = []
        services = []
        for i in range(audit_replicas):
            port = infra.free_port()
            audit_ports.append(port)
            replica_env = {
                **env,
                "DEELRX_AUDIT_ADDR": f"127.0.0.1:{port}",
                "DEELRX_AUDIT_METRICS_PORT": str(infra.free_port()),
            }
            services.append(_service("audit", replica_env, data / f"audit-{i}.log"))
        services.append(_service("detector", env, data / "detector.log"))
        try:
            for port, proc in zip(audit_ports, services, strict=False):
                infra.wait_for_port(port, proc=proc)
            infra.wait_for_port(int(env["DEELRX_DETECTOR_ADDR"].rsplit(":", 1)[1]), proc=services[-1])

            async def measure() -> list[dict[str, Any]]:
                nc = await nats.connect(procs[0].url)
                await nats_bus.ensure_streams(nc.jetstream())
                await nc.close()
                await asyncio.sleep(2)  # the services bind their consumers, replicas share the partitions
                delay = await _alert_delay(procs[0].url)
                pids = {"publisher": os.getpid(), "nats": procs[0].process.pid, "detector": services[-1].pid}
                pids.update({f"audit-{i}": p.pid for i, p in enumerate(services[:-1])})
                if database == "postgres":
                    pids["postgres"] = procs[2].process.pid
                throughput = await _throughput(procs[0].url, database_url, events, pids)
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
            r["audit_replicas"] = audit_replicas
        return results


def run_pipeline_bench(
    databases: tuple[str, ...] = ("sqlite", "postgres"), *, events: int = EVENTS, audit_replicas: int = AUDIT_REPLICAS
) -> dict[str, Any]:
    """The pipeline figures per database: {"results": [...]} (what `make bench` stores under
    the `pipeline` key of bench/results/latest.json)."""
    results = [r for database in databases for r in run(database, events=events, audit_replicas=audit_replicas)]
    return {"events": events, "chains": CHAINS, "audit_replicas": audit_replicas, "results": results}


def write_results(pipeline: dict[str, Any], path: Path = RESULTS) -> None:
    """Set the `pipeline` key of the results file, keeping what other benchmarks wrote there."""
    report = json.loads(path.read_text()) if path.exists() else {}
    report["pipeline"] = pipeline
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def print_results(pipeline: dict[str, Any]) -> None:
    for r in pipeline["results"]:
        figures = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("name", "database"))
        print(f"[{r['database']}] {r['name']}: {figures}")


def main() -> int:
    databases = tuple(a for a in sys.argv[1:] if a in ("sqlite", "postgres")) or ("sqlite", "postgres")
    pipeline = run_pipeline_bench(databases)
    print_results(pipeline)
    write_results(pipeline)
    print(f"written to {RESULTS} (key: pipeline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
