"""The pure parts of `make bench`: wrk output, median/min/max, /proc parsing and the tables."""

from __future__ import annotations

import pytest

from bench import report
from bench.machine import cpu_model, mem_total_gib
from bench.procs import cpu_seconds_from_stat, rss_kib_from_status
from bench.stats import (
    BEGIN_MARKER,
    END_MARKER,
    http_table,
    parse_wrk,
    replace_between_markers,
    spread,
    summarise_runs,
)

WRK_TEXT = """Running 3s test @ http://127.0.0.1:20001/ping
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.52ms    3.10ms   1.02s    91.21%
    Req/Sec     3.05k   210.11     3.40k    80.00%
  Latency Distribution
     50%    9.87ms
     75%   11.02ms
     90%   13.40ms
     99%  850.00us
  9123 requests in 3.00s, 1.31MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:   3040.21
Transfer/sec:    446.02KB
"""

WRK_SCRIPTED = WRK_TEXT.replace(
    "Requests/sec:",
    'WRK_JSON {"requests": 9123, "duration_us": 3000000, "non_2xx": 17, "connect_errors": 0, '
    '"read_errors": 2, "write_errors": 0, "timeouts": 1, "p50_us": 9870, "p90_us": 13400, '
    '"p99_us": 21555, "max_us": 1020000, "mean_us": 10520.4}\nRequests/sec:',
)


def test_wrk_text_output_is_parsed_with_units() -> None:
    found = parse_wrk(WRK_TEXT)
    assert found["rps"] == 3040.21
    assert found["requests"] == 9123
    assert found["p50_ms"] == 9.87
    assert found["p90_ms"] == 13.4
    assert found["p99_ms"] == 0.85  # microseconds converted
    assert found["max_ms"] == 1020.0  # seconds converted
    assert found["non_2xx"] == 17
    assert found["socket_errors"] == 3


def test_the_scripts_json_line_wins_over_the_text() -> None:
    found = parse_wrk(WRK_SCRIPTED)
    assert found["p99_ms"] == 21.555
    assert found["rps"] == 3041.0
    assert found["socket_errors"] == 3
    assert found["non_2xx"] == 17


def test_output_without_a_summary_is_an_error() -> None:
    with pytest.raises(ValueError, match="no wrk summary"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_spread_is_median_min_and_max() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert spread([4.0, 1.0, 2.0, 3.0]) == {"median": 2.5, "min": 1.0, "max": 4.0}
    with pytest.raises(ValueError):
        spread([])


def test_runs_are_summarised_per_figure_and_errors_summed() -> None:
    runs = [
        {"requests": 10, "rps": 100.0, "p50_ms": 1.0, "p99_ms": 9.0, "non_2xx": 1, "socket_errors": 0},
        {"requests": 30, "rps": 300.0, "p50_ms": 3.0, "p99_ms": 7.0, "non_2xx": 0, "socket_errors": 2},
        {"requests": 20, "rps": 200.0, "p50_ms": 2.0, "p99_ms": 8.0, "non_2xx": 0, "socket_errors": 0},
    ]
    s = summarise_runs(runs)
    assert s["rps"] == {"median": 200.0, "min": 100.0, "max": 300.0}
    assert s["p99_ms"] == {"median": 8.0, "min": 7.0, "max": 9.0}
    assert (s["runs"], s["requests"], s["non_2xx"], s["socket_errors"]) == (3, 60, 1, 2)


def _row(server: str, request: str, rps: float, p99: float, connections: int = 32) -> dict:
    one = {"requests": 1, "rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "non_2xx": 0, "socket_errors": 0}
    return {"server": server, "request": request, "workers": 1, "connections": connections, **summarise_runs([one])}


def test_http_table_renders_median_with_min_and_max() -> None:
    row = _row("FastAPI bare", "GET /ping (no auth)", 3040.2, 12.5)
    row["rps"] = {"median": 3040.2, "min": 2990.0, "max": 3100.7}
    lines = http_table([row]).splitlines()
    assert lines[0].startswith("| server | request | workers | conns |")
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    cells = "| FastAPI bare | GET /ping (no auth) | 1 | 32 | 3,040 (2,990-3,101) |"
    assert lines[2] == cells + " 6.25 (6.25-6.25) | 12.5 (12.5-12.5) | 0/0 |"


def test_generated_section_replaces_only_the_text_between_the_markers() -> None:
    doc = f"# Benchmarks\nintro\n{BEGIN_MARKER}\nold table\n{END_MARKER}\nafter\n"
    new = replace_between_markers(doc, "new table")
    assert new == f"# Benchmarks\nintro\n{BEGIN_MARKER}\nnew table\n{END_MARKER}\nafter\n"
    assert replace_between_markers(new, "newer").count(BEGIN_MARKER) == 1
    appended = replace_between_markers("# Benchmarks\n", "first")
    assert appended.endswith(f"{BEGIN_MARKER}\nfirst\n{END_MARKER}\n")


def test_goals_compare_the_gateway_with_its_peers() -> None:
    rows = [
        _row("DeelRx gateway", "GET /v1/auth/verify (cookie)", 1000, 15),
        _row("DeelRx gateway", "GET /v1/auth/verify (Bearer)", 400, 30),
        _row("DeelRx gateway", "GET /v1/auth/me (cookie)", 300, 40),
        _row("DeelRx gateway", "GET /v1/auth/me (Bearer)", 300, 40),
        _row("FastAPI bare", "GET /ping (no auth)", 3000, 10),
        _row("fastapi-users JWT", "GET /users/me (cookie)", 150, 50),
        _row("fastapi-users Redis", "GET /users/me (cookie)", 200, 45),
    ]
    login = {
        "without_storm": {"p99_ms": {"median": 20.0}},
        "with_storm": {"p99_ms": {"median": 50.0}},
    }
    rpcs = [{"name": "rbac Check", "service_cpu_ms_per_call": {"median": 0.3, "min": 0.2, "max": 0.4}}]
    found = {g["goal"]: g for g in report.goals({"case1_http": rows, "case4_login": login, "case3_read_rpcs": rpcs})}
    where = "1 worker(s), 32 conn"
    assert found[f"verify (cookie) req/s >= 5x fastapi-users JWT, {where}"]["met"] is True  # 1000 / 150
    assert found[f"verify (Bearer) req/s >= 5x fastapi-users JWT, {where}"]["met"] is False  # 400 / 150
    assert found[f"verify (cookie) p99 <= bare p99 + 10 ms, {where}"]["met"] is True  # 15 <= 20
    assert found[f"verify (Bearer) p99 <= bare p99 + 10 ms, {where}"]["met"] is False  # 30 > 20
    # /me is compared with the faster fastapi-users peer (Redis here): 300 / 200 < 2.
    assert found[f"me (cookie) req/s >= 2x fastapi-users (faster one), {where}"]["measured"] == 1.5
    assert found["me p99 during a login storm <= 2x without"]["met"] is False  # 2.5x
    assert found["rbac Check service CPU per call <= 0.5 ms"]["met"] is True


def test_markdown_section_has_every_case_in_one_table() -> None:
    results = {
        "profile": "quick",
        "duration_seconds": 100,
        "machine": {
            "time": "2026-12-01T14:00:00Z",
            "cpu_model": "Test CPU",
            "cores": 2,
            "ram_gib": 24.0,
            "kernel": "6.1",
            "python": "3.11.7",
            "load_average_at_start": [1.0, 2.0, 3.0],
        },
        "case1_http": [_row("FastAPI bare", "GET /ping (no auth)", 3000, 10)],
        "rss_idle_mib": {"gateway": 80.0},
        "rss_after_mib": {"gateway": 95.5},
        "revocation": {"requests": 20, "p50_ms": 4.0, "p99_ms": 9.0},
        "goals": [],
    }
    text = report.markdown(results)
    assert "load average at start 1.0, 2.0, 3.0" in text
    assert "| 1 | FastAPI bare: GET /ping (no auth), 1 worker(s), 32 conn | 3,000 (3,000-3,000) | req/s |" in text
    assert "| 5 | RSS gateway (idle / after) | 80.0 / 95.5 | MiB |" in text
    assert "| 6 | revocation propagation A -> B (20 sessions) | 9.00 | p99 ms |" in text


def test_proc_files_are_read_even_with_spaces_in_the_command_name() -> None:
    stat = "4242 (uvicorn (worker) 1) S 4200 4242 4200 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 1 1"
    assert cpu_seconds_from_stat(stat, ticks=100) == 3.0
    assert rss_kib_from_status("Name:\tpython\nVmRSS:\t  81234 kB\nThreads:\t3\n") == 81234
    assert rss_kib_from_status("Name:\tzombie\n") == 0


def test_machine_description_is_read_from_proc() -> None:
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert mem_total_gib("MemTotal:       25165824 kB\n") == 24.0


def test_a_process_trees_cpu_counts_its_children() -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from bench.procs import children, cpu_seconds, tree_cpu_seconds

    # A parent that waits while its child burns CPU: only the tree shows the child's work.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "'import time\\nend = time.time() + 60\\nwhile time.time() < end: pass'])",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while tree_cpu_seconds(parent.pid) - cpu_seconds(parent.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children(parent.pid), "the child never started"
        assert tree_cpu_seconds(parent.pid) - cpu_seconds(parent.pid) >= 0.3
    finally:
        for child in children(parent.pid):
            os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()
