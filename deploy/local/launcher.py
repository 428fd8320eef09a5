"""Run the whole suite as separate processes: NATS, Redis, five services and the gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deelrx_kit.dev_pki import development_pki
from deelrx_kit.mtls import TlsFiles
from deelrx_kit.settings import SERVICES, Settings
from deploy.local import infra

# Embedded servers prefer these ports, so they never collide with a system NATS/Redis
# on 4222/6379; a random free port is used when they are taken.
EMBEDDED_NATS_PORT = 14222
EMBEDDED_REDIS_PORT = 16379


def _port(preferred: int) -> int:
    return preferred if infra.port_is_free(preferred) else infra.free_port()


@dataclass
class Suite:
    """The processes of one running suite, started in dependency order."""

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    infra_procs: list[infra.Proc] = field(default_factory=list)
    services: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Per-process certificates when the suite runs its internal hops on mutual TLS (dev CA).
    tls: dict[str, TlsFiles] = field(default_factory=dict)

    def enable_dev_mtls(self) -> Path:
        """Mutual TLS between the processes, from a development CA under the data directory."""
        pki = self.settings.data_dir.resolve() / "pki"
        self.tls = development_pki(pki, (*SERVICES, "gateway", "operator"))
        return pki

    @property
    def transport(self) -> str:
        if self.tls:
            return f"mutual TLS (development CA in {self.tls['gateway'].ca.parent})"
        return "plaintext on loopback (DEELRX_DEV_MTLS=1 runs it on mutual TLS with a development CA)"

    def _process_env(self, name: str) -> dict[str, str]:
        env = dict(self.env)
        files = self.tls.get(name)
        if files is not None:
            env["DEELRX_GRPC_TLS_CERT_FILE"] = str(files.cert)
            env["DEELRX_GRPC_TLS_KEY_FILE"] = str(files.key)
            env["DEELRX_GRPC_TLS_CA_FILE"] = str(files.ca)
        return env

    def health_channel(self, name: str, address: str) -> grpc.Channel:
        files = self.tls.get("operator")
        if files is None:
            return grpc.insecure_channel(address)
        creds = grpc.ssl_channel_credentials(files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes())
        return grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", name)])

    def start_infrastructure(self) -> None:
        data = self.settings.data_dir
        if "DEELRX_NATS_URL" not in os.environ:
            nats = infra.start_nats(data / "nats", _port(EMBEDDED_NATS_PORT), self.log_dir / "nats.log")
            self.infra_procs.append(nats)
            self.env["DEELRX_NATS_URL"] = nats.url
        if "DEELRX_REDIS_URL" not in os.environ:
            redis = infra.start_redis(data / "redis", _port(EMBEDDED_REDIS_PORT), self.log_dir / "redis.log")
            self.infra_procs.append(redis)
            self.env["DEELRX_REDIS_URL"] = redis.url

    def start_services(self, stdout: int | None = None) -> None:
        for name in SERVICES:
            self.services[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], env=self._process_env(name), stdout=stdout, stderr=stdout
            )
        for index in range(self.settings.gateway_processes):
            self.start_gateway(index, stdout)

    def gateway_env(self, index: int) -> dict[str, str]:
        """Environment of gateway process `index`: more than one share the public port with
        SO_REUSEPORT, each with its own admin port (admin port + index)."""
        env = self._process_env("gateway")
        if index > 0 or self.settings.gateway_processes > 1:
            env["DEELRX_HTTP_REUSE_PORT"] = "1"
            env["DEELRX_GATEWAY_REPLICAS"] = str(max(index + 1, self.settings.gateway_processes))
        env["DEELRX_ADMIN_PORT"] = str(int(env.get("DEELRX_ADMIN_PORT", self.settings.admin_port)) + index)
        return env

    def start_gateway(self, index: int, stdout: int | None = None) -> subprocess.Popen[bytes]:
        """Gateway process `index` ("gateway" for 0, "gateway-<index + 1>" after)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=self.gateway_env(index), stdout=stdout, stderr=stdout
        )
        self.services["gateway" if index == 0 else f"gateway-{index + 1}"] = proc
        return proc

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for name in SERVICES:
            address = self.env.get(f"DEELRX_{name.upper()}_ADDR") or getattr(self.settings, f"{name}_addr")
            with self.health_channel(name, address) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                while True:
                    self._check_alive(name)
                    try:
                        reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.RpcError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{name} did not become healthy")
                    time.sleep(0.2)
        url = f"http://127.0.0.1:{self.settings.http_port}/healthz"
        while True:
            self._check_alive("gateway")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("gateway did not become healthy")
            time.sleep(0.2)

    def _check_alive(self, name: str) -> None:
        proc = self.services[name]
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}")

    def stop(self) -> None:
        # Gateway first, so nothing new comes in; infrastructure last.
        for name in reversed(list(self.services)):
            proc = self.services[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.services.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for p in reversed(self.infra_procs):
            p.stop()


def prepare(settings: Settings) -> Suite:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    settings.secret()  # create the development key once, before the processes race for it
    env = dict(os.environ)
    env.setdefault("DEELRX_DATA_DIR", str(settings.data_dir.resolve()))
    env["PYTHONUNBUFFERED"] = "1"
    suite = Suite(settings, env, log_dir)
    if os.environ.get("DEELRX_DEV_MTLS") == "1" and settings.grpc_tls_files() is None:
        suite.enable_dev_mtls()
    return suite
