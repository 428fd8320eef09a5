"""Per-service database URLs and metrics ports are settings like any other `DEELRX_*` variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from deelrx_kit.production import production_problems
from deelrx_kit.settings import DEFAULT_METRICS_PORTS, Settings


def test_a_service_database_url_wins_over_the_shared_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEELRX_RBAC_DATABASE_URL", "postgresql://rbac@db/own")
    settings = Settings(database_url="postgresql://all@db/shared", data_dir=tmp_path)

    assert settings.service_database_url("rbac") == "postgresql://rbac@db/own"
    assert settings.service_database_url("audit") == "postgresql://all@db/shared"
    assert Settings(data_dir=tmp_path).service_database_url("identity").endswith("/identity.db")


def test_a_service_metrics_port_wins_over_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEELRX_SESSIONS_METRICS_PORT", "19102")

    assert Settings().metrics_port("sessions") == 19102
    assert Settings().metrics_port("identity") == DEFAULT_METRICS_PORTS["identity"]


def test_production_names_the_service_database_variable_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEELRX_AUDIT_DATABASE_URL", "sqlite+aiosqlite:////tmp/audit.db")

    problems = production_problems(Settings(env="production"), "audit")

    assert any("DEELRX_AUDIT_DATABASE_URL is SQLite" in p for p in problems), problems
