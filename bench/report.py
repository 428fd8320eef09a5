"""Turning one `make bench` result document into console lines, the goals, the Markdown section of
docs/benchmarks.md and one PNG chart per case. Everything but `charts` is pure."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.stats import cell, http_table, markdown_table, replace_between_markers

FU_JWT = "fastapi-users JWT"
FU_REDIS = "fastapi-users Redis"
BARE = "FastAPI bare"
GATEWAY = "DeelRx gateway"


def http_line(r: dict[str, Any]) -> str:
    return (
        f"{r['server'][:22]:<22} {r['request'][:50]:<50} w={r['workers']} c={r['connections']:<3} "
        f"rps {cell(r['rps']):<26} p50 {cell(r['p50_ms']):<22} p99 {cell(r['p99_ms']):<22} "
        f"non-2xx {r['non_2xx']} err {r['socket_errors']}"
    )


def rpc_line(r: dict[str, Any]) -> str:
    return (
        f"{r['name']:<22} calls/s {cell(r['calls_per_s']):<24} p50 {cell(r['p50_ms']):<20} "
        f"p99 {cell(r['p99_ms']):<20} service CPU ms/call {cell(r['service_cpu_ms_per_call'])}"
    )


def _find(rows: Iterable[dict[str, Any]], server: str, request_prefix: str, connections: int) -> dict[str, Any] | None:
    for r in rows:
        if r["server"] == server and r["request"].startswith(request_prefix) and r["connections"] == connections:
            return r
    return None


def _median(r: dict[str, Any] | None, key: str) -> float | None:
    return None if r is None else float(r[key]["median"])


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with the measured value and whether it holds (None when a case is missing)."""
    out: list[dict[str, Any]] = []

    def add(goal: str, measured: float | None, target: float, holds: bool | None, unit: str) -> None:
        out.append(
            {
                "goal": goal,
                "measured": None if measured is None else round(measured, 2),
                "target": round(target, 2),
                "unit": unit,
                "met": holds,
            }
        )

    for key in ("case1_http", "case2_http_two_workers"):
        rows = results.get(key) or []
        if not rows:
            continue
        workers = rows[0]["workers"]
        for connections in sorted({r["connections"] for r in rows}):
            fu_jwt = _median(_find(rows, FU_JWT, "GET /users/me", connections), "rps")
            fu_best = max(
                (v for v in (fu_jwt, _median(_find(rows, FU_REDIS, "GET /users/me", connections), "rps")) if v),
                default=None,
            )
            bare_p99 = _median(_find(rows, BARE, "GET /ping", connections), "p99_ms")
            where = f"{workers} worker(s), {connections} conn"
            for cred in ("cookie", "Bearer"):
                verify = _find(rows, GATEWAY, f"GET /v1/auth/verify ({cred})", connections)
                me = _find(rows, GATEWAY, f"GET /v1/auth/me ({cred})", connections)
                ratio = _median(verify, "rps") / fu_jwt if verify and fu_jwt else None
                add(
                    f"verify ({cred}) req/s >= 5x fastapi-users JWT, {where}",
                    ratio,
                    5,
                    None if ratio is None else ratio >= 5,
                    "x",
                )
                p99 = _median(verify, "p99_ms")
                if p99 is not None and bare_p99 is not None:
                    add(
                        f"verify ({cred}) p99 <= bare p99 + 10 ms, {where}",
                        p99,
                        bare_p99 + 10,
                        p99 <= bare_p99 + 10,
                        "ms",
                    )
                ratio = _median(me, "rps") / fu_best if me and fu_best else None
                add(
                    f"me ({cred}) req/s >= 2x fastapi-users (faster one), {where}",
                    ratio,
                    2,
                    None if ratio is None else ratio >= 2,
                    "x",
                )
    login = results.get("case4_login")
    if login:
        alone, stormed = login["without_storm"]["p99_ms"]["median"], login["with_storm"]["p99_ms"]["median"]
        ratio = stormed / alone if alone else None
        add("me p99 during a login storm <= 2x without", ratio, 2, None if ratio is None else ratio <= 2, "x")
    for r in results.get("case3_read_rpcs") or []:
        cpu = r["service_cpu_ms_per_call"]["median"]
        add(f"{r['name']} service CPU per call <= 0.5 ms", cpu, 0.5, cpu <= 0.5, "ms")
    return out


def _yes(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    """One table over every case: case, measurement, median (min-max), unit."""
    rows: list[list[str]] = []
    for key, case in (("case1_http", "1"), ("case2_http_two_workers", "2")):
        for r in results.get(key) or []:
            label = f"{r['server']}: {r['request']}, {r['workers']} worker(s), {r['connections']} conn"
            rows.append([case, label, cell(r["rps"]), "req/s"])
            rows.append([case, label, cell(r["p99_ms"]), "p99 ms"])
    for r in results.get("case3_read_rpcs") or []:
        rows.append(["3", f"{r['name']}, {r['concurrency']} callers", cell(r["calls_per_s"]), "calls/s"])
        rows.append(["3", f"{r['name']}, {r['concurrency']} callers", cell(r["p99_ms"]), "p99 ms"])
        rows.append(["3", f"{r['name']}: service CPU per call", cell(r["service_cpu_ms_per_call"]), "ms"])
    login = results.get("case4_login")
    if login:
        t = login["login_throughput"]
        rows.append(["4", f"login, {t['connections']} conn", cell(t["rps"]), "logins/s"])
        rows.append(["4", login["without_storm"]["request"], cell(login["without_storm"]["p99_ms"]), "p99 ms"])
        rows.append(["4", login["with_storm"]["request"], cell(login["with_storm"]["p99_ms"]), "p99 ms"])
    idle, after = results.get("rss_idle_mib") or {}, results.get("rss_after_mib") or {}
    for name in sorted(set(idle) | set(after)):
        rows.append(["5", f"RSS {name} (idle / after)", f"{cell(idle.get(name))} / {cell(after.get(name))}", "MiB"])
    for r in results.get("ratelimit") or []:
        rows.append(["6", f"rate limiter {r['name']}: added latency", cell(r["p50_ms"]), "p50 ms"])
        rows.append(["6", f"rate limiter {r['name']}: added latency", cell(r["p99_ms"]), "p99 ms"])
    rev = results.get("revocation")
    if rev:
        rows.append(["6", f"revocation propagation A -> B ({rev['requests']} sessions)", cell(rev["p50_ms"]), "p50 ms"])
        rows.append(["6", f"revocation propagation A -> B ({rev['requests']} sessions)", cell(rev["p99_ms"]), "p99 ms"])
    for r in results.get("authz") or []:
        rows.append(["6", f"authz {r['name']}", cell(r["checks_per_s"]), "checks/s"])
    for r in (results.get("pipeline") or {}).get("results", []):
        if "events_per_second" in r:
            rows.append(
                ["6", f"audit pipeline [{r['database']}] {r['name']}", cell(r["events_per_second"]), "events/s"]
            )
        elif "p99_ms" in r:
            rows.append(["6", f"audit pipeline [{r['database']}] {r['name']}", cell(r["p99_ms"]), "p99 ms"])
    return rows


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    load = ", ".join(str(x) for x in m["load_average_at_start"])
    parts = [
        f"Run of {m['time']} (`make bench`, profile `{results['profile']}`, {results.get('duration_seconds', '?')} s): "
        f"{m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, Python {m['python']}, "
        f"load average at start {load}. Cells are median (min-max) over the runs.",
        "### Goals",
        markdown_table(
            ["goal", "measured", "target", "met"],
            (
                [g["goal"], f"{cell(g['measured'])} {g['unit']}", f"{cell(g['target'])} {g['unit']}", _yes(g["met"])]
                for g in results.get("goals", [])
            ),
        ),
        "### Cases 1 and 2: authenticated requests, one and two workers per server",
        http_table([*(results.get("case1_http") or []), *(results.get("case2_http_two_workers") or [])]),
    ]
    rpcs = results.get("case3_read_rpcs") or []
    if rpcs:
        parts += [
            "### Case 3: internal gRPC reads",
            markdown_table(
                ["RPC", "callers", "calls/s", "p50 ms", "p99 ms", "service CPU ms/call"],
                (
                    [
                        r["name"],
                        str(r["concurrency"]),
                        cell(r["calls_per_s"]),
                        cell(r["p50_ms"]),
                        cell(r["p99_ms"]),
                        cell(r["service_cpu_ms_per_call"]),
                    ]
                    for r in rpcs
                ),
            ),
        ]
    login = results.get("case4_login")
    if login:
        a = login["argon2id"]
        parts += [
            f"### Case 4: logins (argon2id t={a['time_cost']}, m={a['memory_cost_kib']} KiB, p={a['parallelism']})",
            http_table([login["login_throughput"], login["without_storm"], login["with_storm"], login["storm"]]),
        ]
    parts += [
        "### Every case in one table",
        markdown_table(["case", "measurement", "median (min-max)", "unit"], summary_rows(results)),
    ]
    return "\n\n".join(parts) + "\n"


def replace_section(document: str, section: str) -> str:
    return replace_between_markers(document, section)


def charts(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per case: throughput bars with min-max whiskers, p99 next to them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def bars(ax: Any, labels: list[str], spreads: list[dict[str, float]], title: str, unit: str) -> None:
        medians = [s["median"] for s in spreads]
        low = [max(0.0, s["median"] - s["min"]) for s in spreads]
        high = [max(0.0, s["max"] - s["median"]) for s in spreads]
        ax.barh(labels, medians, xerr=[low, high], color="#4a78b5", ecolor="#333333", capsize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.invert_yaxis()

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    for key, name, title in (
        ("case1_http", "case1_authenticated_requests.png", "Case 1: one worker per server"),
        ("case2_http_two_workers", "case2_two_workers.png", "Case 2: two workers per server"),
    ):
        rows = results.get(key) or []
        if not rows:
            continue
        levels = sorted({r["connections"] for r in rows})
        fig, axes = plt.subplots(len(levels), 2, figsize=(12, 3.2 * len(levels)), squeeze=False)
        for i, c in enumerate(levels):
            sel = [r for r in rows if r["connections"] == c]
            labels = [f"{r['server']}: {r['request']}" for r in sel]
            bars(axes[i][0], labels, [r["rps"] for r in sel], f"{title}, {c} conn: req/s", "req/s")
            bars(axes[i][1], labels, [r["p99_ms"] for r in sel], f"{c} conn: p99", "ms")
        save(fig, name)
    rpcs = results.get("case3_read_rpcs") or []
    if rpcs:
        fig, axes = plt.subplots(1, 3, figsize=(12, 2.8))
        labels = [r["name"] for r in rpcs]
        bars(axes[0], labels, [r["calls_per_s"] for r in rpcs], "Case 3: calls/s (16 callers)", "calls/s")
        bars(axes[1], labels, [r["p99_ms"] for r in rpcs], "p99", "ms")
        bars(axes[2], labels, [r["service_cpu_ms_per_call"] for r in rpcs], "service CPU per call", "ms")
        save(fig, "case3_read_rpcs.png")
    login = results.get("case4_login")
    if login:
        fig, axes = plt.subplots(1, 2, figsize=(12, 2.6))
        bars(axes[0], ["logins"], [login["login_throughput"]["rps"]], "Case 4: login throughput", "logins/s")
        bars(
            axes[1],
            ["without login storm", "during login storm"],
            [login["without_storm"]["p99_ms"], login["with_storm"]["p99_ms"]],
            "GET /v1/auth/me (Bearer) p99",
            "ms",
        )
        save(fig, "case4_logins.png")
    idle, after = results.get("rss_idle_mib") or {}, results.get("rss_after_mib") or {}
    if idle or after:
        names = sorted(set(idle) | set(after))
        fig, ax = plt.subplots(figsize=(10, 0.3 * len(names) + 1.2))
        ys = list(range(len(names)))
        ax.barh([y - 0.2 for y in ys], [idle.get(n, 0) for n in names], height=0.4, label="idle")
        ax.barh([y + 0.2 for y in ys], [after.get(n, 0) for n in names], height=0.4, label="after the cases")
        ax.set_yticks(ys, names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("RSS MiB", fontsize=8)
        ax.set_title("Case 5: resident memory per process", fontsize=9)
        ax.legend(fontsize=7)
        save(fig, "case5_memory.png")
    limiters, authz_rows, pipe = (
        results.get("ratelimit") or [],
        results.get("authz") or [],
        (results.get("pipeline") or {}).get("results", []),
    )
    if limiters or authz_rows or pipe:
        fig, axes = plt.subplots(3, 1, figsize=(10, 8))

        def plain(v: float) -> dict[str, float]:
            return {"median": v, "min": v, "max": v}

        if limiters:
            bars(
                axes[0], [r["name"] for r in limiters], [plain(r["p99_ms"]) for r in limiters], "Rate limiter p99", "ms"
            )
        if authz_rows:
            bars(
                axes[1],
                [r["name"][:34] for r in authz_rows],
                [plain(r["checks_per_s"]) for r in authz_rows],
                "Authorization (log scale)",
                "checks/s",
            )
            axes[1].set_xscale("log")
        stored = [r for r in pipe if "events_per_second" in r]
        if stored:
            bars(
                axes[2],
                [r["database"] for r in stored],
                [plain(r["events_per_second"]) for r in stored],
                "Audit pipeline",
                "events/s",
            )
        save(fig, "case6_existing_benches.png")
    return written
