"""DEELRX_ENV=production refuses to start on development defaults, naming the setting to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deelrx_kit.dev_pki import CertificateAuthority
from deelrx_kit.production import production_problems
from deelrx_kit.settings import Settings

STRONG = "k" * 48


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, str]:
    files = CertificateAuthority.create(tmp_path).issue(tmp_path, "sessions")
    return {
        "grpc_tls_cert_file": str(files.cert),
        "grpc_tls_key_file": str(files.key),
        "grpc_tls_ca_file": str(files.ca),
    }


def _safe(tls: dict[str, str], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "production",
        "secret_key": STRONG,
        "database_url": "postgresql://deelrx@db.internal/deelrx?sslmode=verify-full&sslrootcert=/ca.crt",
        "nats_url": "tls://nats.internal:4222",
        "redis_url": "rediss://redis.internal:6379/0",
        "public_url": "https://auth.example.com",
        **tls,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_a_complete_production_configuration_starts(tls: dict[str, str]) -> None:
    for process in ("gateway", "identity", "sessions", "rbac", "audit", "detector"):
        assert production_problems(_safe(tls), process) == []


def test_development_never_refuses() -> None:
    assert production_problems(Settings(env="development"), "sessions") == []


@pytest.mark.parametrize(
    ("override", "process", "named"),
    [
        ({"database_url": ""}, "sessions", "DEELRX_SESSIONS_DATABASE_URL (or DEELRX_DATABASE_URL) is not set"),
        ({"database_url": "sqlite+aiosqlite:////tmp/x.db"}, "identity", "DEELRX_DATABASE_URL is SQLite"),
        ({"database_url": "postgresql://u@db/deelrx"}, "rbac", "sslmode=verify-full"),
        ({"database_url": "postgresql://u@db/deelrx?sslmode=require"}, "audit", "sslmode=verify-full"),
        ({"secret_key": ""}, "gateway", "DEELRX_SECRET_KEY is not set"),
        ({"secret_key": "changeme"}, "sessions", "DEELRX_SECRET_KEY is a well-known default"),
        ({"secret_key": "short-but-not-default"}, "sessions", "DEELRX_SECRET_KEY is shorter than 32"),
        ({"grpc_tls_cert_file": ""}, "rbac", "DEELRX_GRPC_TLS_CERT_FILE is not set"),
        ({"grpc_tls_ca_file": "/nowhere/ca.crt"}, "gateway", "DEELRX_GRPC_TLS_CA_FILE names a file that does not"),
        ({"nats_url": "nats://nats:4222"}, "audit", "DEELRX_NATS_URL must be a tls:// URL"),
        ({"redis_url": "redis://redis:6379/0"}, "gateway", "DEELRX_REDIS_URL must be a rediss:// URL"),
        ({"public_url": "http://auth.example.com"}, "gateway", "DEELRX_PUBLIC_URL must be https://"),
    ],
)
def test_each_unsafe_setting_is_named(tls: dict[str, str], override: dict[str, str], process: str, named: str) -> None:
    problems = production_problems(_safe(tls, **override), process)
    assert len(problems) == 1 and named in problems[0], problems


def test_only_the_processes_that_key_something_need_a_secret(tls: dict[str, str]) -> None:
    for process in ("rbac", "audit", "detector"):
        assert production_problems(_safe(tls, secret_key=""), process) == []


def test_the_gateway_and_detector_need_no_database(tls: dict[str, str]) -> None:
    assert production_problems(_safe(tls, database_url=""), "gateway") == []
    assert production_problems(_safe(tls, database_url=""), "detector") == []


@pytest.mark.parametrize("module", ["services.sessions", "gateway"])
def test_the_process_exits_with_the_list_and_without_leaking_the_secret(module: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEELRX_")}
    env.update(DEELRX_ENV="production", DEELRX_DATA_DIR=str(tmp_path), DEELRX_SECRET_KEY="tiny-secret-value")
    done = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "refuses to start in production" in done.stderr
    assert "DEELRX_GRPC_TLS_CERT_FILE is not set" in done.stderr
    assert "DEELRX_SECRET_KEY is shorter than 32" in done.stderr
    assert "tiny-secret-value" not in done.stderr + done.stdout
    assert not list(tmp_path.glob("*.db")), "no SQLite file is created before refusing"
