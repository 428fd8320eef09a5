"""The root secret: checked when configured, created safely in development.

`DEELRX_SECRET_KEY` must be long enough to be a key. Without it (development only), a random
secret is kept in `$DEELRX_DATA_DIR/secret.key`: created with mode 0600 from the first byte
(never written under the umask and tightened afterwards), published atomically, and refused
when anyone but its owner can read or write it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from pathlib import Path

import structlog

log = structlog.get_logger("deelrx.secret")

MIN_SECRET_LENGTH = 32


class SecretError(RuntimeError):
    """The configured or stored secret is unusable."""


def check_secret_key(value: str) -> bytes:
    if len(value) < MIN_SECRET_LENGTH:
        raise SecretError(f"DEELRX_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
    return value.encode()


def development_secret(path: Path) -> bytes:
    """Read the development secret, creating it first if it does not exist."""
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL + mode 0600 at creation: the file is never readable by others, whatever the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
            out.flush()
            os.fsync(out.fileno())
        # link() fails when another process published its secret first: theirs wins, and
        # every process reads the same one.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r") as src:
        info = os.fstat(src.fileno())
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(f"{path} is accessible by group or others; chmod 600 it (or set DEELRX_SECRET_KEY)")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise SecretError(f"{path} belongs to another user")
        value = src.read().strip()
    return check_secret_key(value)


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_development_exposed(env: str, **listen_hosts: str) -> bool:
    """Development mode listening beyond loopback is usually a production deployment that
    forgot `DEELRX_ENV=production` (and so runs on a per-host random secret): say so loudly."""
    if env == "production":
        return False
    exposed = {name: host for name, host in listen_hosts.items() if not _is_loopback(host)}
    if exposed:
        log.warning(
            "development_mode_on_network_address",
            env=env,
            listening=exposed,
            note="DEELRX_ENV is not 'production': secrets and cookies use development defaults; "
            "set DEELRX_ENV=production and DEELRX_SECRET_KEY on any shared host",
        )
        return True
    return False
