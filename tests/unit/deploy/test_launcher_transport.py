"""`make run` needs no configuration: plaintext on loopback by default (and says so), mutual TLS
from a development CA under the data directory with DEELRX_DEV_MTLS=1."""

from __future__ import annotations

from pathlib import Path

import pytest

from deelrx_kit.settings import SERVICES, Settings
from deploy.local.launcher import prepare


def test_default_is_plaintext_on_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEELRX_DEV_MTLS", raising=False)
    suite = prepare(Settings(data_dir=tmp_path))
    assert suite.tls == {}
    assert suite.transport.startswith("plaintext on loopback")
    assert "DEELRX_GRPC_TLS_CERT_FILE" not in suite._process_env("identity")


def test_dev_mtls_gives_each_process_its_own_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEELRX_DEV_MTLS", "1")
    suite = prepare(Settings(data_dir=tmp_path))
    assert set(suite.tls) == {*SERVICES, "gateway", "operator"}
    assert suite.transport.startswith("mutual TLS (development CA in")
    envs = {name: suite._process_env(name) for name in (*SERVICES, "gateway")}
    certs = {env["DEELRX_GRPC_TLS_CERT_FILE"] for env in envs.values()}
    assert len(certs) == len(envs), "one certificate per process"
    assert {env["DEELRX_GRPC_TLS_CA_FILE"] for env in envs.values()} == {str(tmp_path.resolve() / "pki" / "ca.crt")}
    key = Path(envs["sessions"]["DEELRX_GRPC_TLS_KEY_FILE"])
    assert key.stat().st_mode & 0o077 == 0, "private keys readable by their owner only"
