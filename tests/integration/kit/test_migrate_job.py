"""The migration Job's command: `python -m deelrx_kit.migrate` brings each service's schema to the
newest revision, and a production run refuses SQLite before touching anything."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DEELRX_")}
    return subprocess.run(
        [sys.executable, "-m", "deelrx_kit.migrate", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_creates_every_schema(tmp_path: Path) -> None:
    done = _run({"DEELRX_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    for service in ("identity", "sessions", "rbac", "audit"):
        with sqlite3.connect(tmp_path / f"{service}.db") as db:
            [(version,)] = db.execute("SELECT version_num FROM alembic_version").fetchall()
            assert version
        assert f"{service}: schema at the newest revision" in done.stdout


def test_migrate_refuses_sqlite_in_production_and_unknown_services(tmp_path: Path) -> None:
    done = _run({"DEELRX_DATA_DIR": str(tmp_path), "DEELRX_ENV": "production"}, "rbac")
    assert done.returncode != 0
    assert "DEELRX_RBAC_DATABASE_URL (or DEELRX_DATABASE_URL) is not set" in done.stderr
    assert not list(tmp_path.glob("*.db"))
    assert "no database: gateway" in _run({"DEELRX_DATA_DIR": str(tmp_path)}, "gateway").stderr
