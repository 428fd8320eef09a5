"""The root secret: long enough, and the development file private from its first byte."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
import structlog

from deelrx_kit.logging import configure_logging
from deelrx_kit.secret_file import SecretError, warn_if_development_exposed
from deelrx_kit.settings import Settings


def test_development_secret_file_is_created_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        secret = Settings(data_dir=tmp_path).secret()
    finally:
        os.umask(old)
    path = tmp_path / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 32
    assert Settings(data_dir=tmp_path).secret() == secret  # kept across restarts
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temporary file left


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_secret_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    Settings(data_dir=tmp_path).secret()
    (tmp_path / "secret.key").chmod(mode)
    with pytest.raises(SecretError, match="group or others"):
        Settings(data_dir=tmp_path).secret()


def test_short_secret_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="at least 32"):
        Settings(data_dir=tmp_path, secret_key="too-short-secret").secret()
    assert Settings(data_dir=tmp_path, secret_key="x" * 32).secret() == b"x" * 32


@pytest.fixture
def isolated_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_development_mode_on_a_network_address_warns_loudly(capsys, isolated_logging) -> None:
    configure_logging("test", "INFO")
    assert not warn_if_development_exposed("development", http_host="127.0.0.1", admin_host="::1")
    assert not warn_if_development_exposed("production", http_host="0.0.0.0")
    assert warn_if_development_exposed("development", http_host="0.0.0.0", admin_host="127.0.0.1")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [r["msg"] for r in records] == ["development_mode_on_network_address"]
    assert records[0]["level"] == "warning" and records[0]["listening"] == {"http_host": "0.0.0.0"}


def test_processes_starting_together_agree_on_one_development_secret(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from deelrx_kit.secret_file import development_secret

    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: development_secret(tmp_path / "secret.key"), range(16)))
    assert len(secrets) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
