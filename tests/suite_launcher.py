"""The whole product as separate processes (five services and the gateway, launched the way
`make run` launches them through deploy.local.launcher) against a given NATS, Redis and a SQLite or
PostgreSQL database, with a real SMTP server catching the mail.

One module for every suite the tests start: tests/e2e (per database, with mutual TLS, with an https
public URL) and tests/security. Extra gateway replicas on a running suite come from
`gateway_replica`, which is ready (public /readyz 200) or raises."""

from __future__ import annotations

import asyncio
import email
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import httpx
import nats
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from deelrx_kit import nats_bus
from deelrx_kit.audit_partitions import PARTITIONS, partition_filter
from deelrx_kit.settings import SERVICES, Settings
from deploy.local import infra
from deploy.local.launcher import Suite, prepare
from services.audit.adapters.nats_events import ALERTS_DURABLE
from services.audit.adapters.nats_legacy import LEGACY_DURABLE, LEGACY_FILTER
from services.audit.adapters.nats_partitions import durable_name
from services.detector.adapters.nats_events import DURABLE as DETECTOR_DURABLE
from services.detector.adapters.nats_events import RESPONSES_DURABLE
from services.sessions.member_removals import DURABLE as REMOVALS_DURABLE
from services.sessions.member_removals import SUBJECT as REMOVALS_SUBJECT
from services.sessions.password_changes import DURABLE as PASSWORDS_DURABLE
from services.sessions.password_changes import SUBJECT as PASSWORDS_SUBJECT
from tests.conftest import Infra, _create_database, drop_database


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        with self.arrived:
            self.messages.append(email.message_from_bytes(envelope.content))
            self.arrived.notify_all()
        return "250 OK"

    def mark(self) -> int:
        with self.arrived:
            return len(self.messages)

    def wait_for(self, to: str, pattern: str, after: int = 0, timeout: float = 15.0) -> str:
        """The first match of `pattern` in a mail to `to` that arrived after `mark()`."""
        regex = re.compile(pattern)
        with self.arrived:
            ok = self.arrived.wait_for(lambda: self._find(to, regex, after) is not None, timeout=timeout)
            assert ok, f"no mail to {to} matching {pattern}; got {[m['To'] for m in self.messages]}"
            return self._find(to, regex, after)  # type: ignore[return-value]

    def _find(self, to: str, regex: re.Pattern[str], after: int) -> str | None:
        for message in self.messages[after:]:
            if to.lower() not in (message["To"] or "").lower():
                continue
            for part in message.walk():
                if part.get_content_maintype() == "text":
                    match = regex.search(part.get_payload(decode=True).decode())
                    if match:
                        return match.group(1) if match.groups() else match.group(0)
        return None


@dataclass
class RunningSuite:
    base_url: str
    mailbox: Mailbox
    nats_url: str
    redis_url: str
    settings: Settings
    database: str
    env: dict[str, str]
    # The launched processes, for tests that stop and restart a service, and their shared log.
    launcher: Suite | None = None
    log_path: Path | None = None
    admin_url: str = ""

    def client(self, **kwargs) -> httpx.Client:  # type: ignore[no-untyped-def]
        return httpx.Client(base_url=self.base_url, timeout=20, **kwargs)


def suite_env(
    infrastructure: Infra, smtp_port: int, data_dir: Path, scheme: str, secret_key: str
) -> tuple[dict[str, str], int, int]:
    """The environment of one suite on fresh ports: (env, public port, admin port)."""
    http_port, admin_port = infra.free_port(), infra.free_port()
    env = {
        "DEELRX_DATA_DIR": str(data_dir),
        "DEELRX_NATS_URL": infrastructure.nats_url,
        "DEELRX_REDIS_URL": infrastructure.redis_url,
        "DEELRX_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "DEELRX_HTTP_PORT": str(http_port),
        "DEELRX_ADMIN_PORT": str(admin_port),
        "DEELRX_PUBLIC_URL": f"{scheme}://127.0.0.1:{http_port}",
        "DEELRX_SECRET_KEY": secret_key,
        "DEELRX_ARGON2_TIME_COST": "1",
        "DEELRX_ARGON2_MEMORY_COST_KIB": "8192",
        "DEELRX_ARGON2_PARALLELISM": "1",
        "DEELRX_LOG_LEVEL": "INFO",
        # Every test comes from 127.0.0.1, and the suites share one Redis.
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_IP": "100000",
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_ACCOUNT": "100000",
        "DEELRX_RATE_LIMIT_REFRESH_PER_IP": "10000",
        "DEELRX_RATE_LIMIT_PUBLIC_PER_IP": "10000",
        "DEELRX_AUDIT_STREAM_HEARTBEAT_SECONDS": "1",
        # One suite serves many tests from one address and two user agents (httpx, Chromium):
        # guessing codes, replaying tokens and sharing sessions are what some tests do on purpose.
        # Here those rules only mail the owners, so one test's alert cannot lock, revoke or demand
        # a second factor of another's account; brute_force keeps its defaults (lock + notify),
        # which tests/e2e/test_automatic_responses.py proves end to end.
        "DEELRX_DETECTOR_RESPONSES": json.dumps(
            {
                rule: ["notify_owners"]
                for rule in ("mfa_guessing", "session_anomaly", "refresh_token_reuse", "credential_stuffing")
            }
        ),
    }
    for name in SERVICES:
        env[f"DEELRX_{name.upper()}_ADDR"] = f"127.0.0.1:{infra.free_port()}"
        env[f"DEELRX_{name.upper()}_METRICS_PORT"] = str(infra.free_port())
    return env, http_port, admin_port


# The durable consumers of one suite that take DEELRX_NATS_CONSUMER_PREFIX: (stream, subject,
# name without the prefix), among them the audit service's per-partition consumers and its
# drain of the unpartitioned subjects.
SUITE_CONSUMERS = (
    ("ALERTS", nats_bus.ALERTS_SUBJECT, ALERTS_DURABLE),
    ("ALERTS", nats_bus.ALERTS_SUBJECT, RESPONSES_DURABLE),
    ("AUDIT", f"{nats_bus.AUDIT_SUBJECT_PREFIX}>", DETECTOR_DURABLE),
    ("AUDIT", REMOVALS_SUBJECT, REMOVALS_DURABLE),
    ("AUDIT", PASSWORDS_SUBJECT, PASSWORDS_DURABLE),
    *(("AUDIT", partition_filter(p), durable_name(p)) for p in range(PARTITIONS)),
    ("AUDIT", LEGACY_FILTER, LEGACY_DURABLE),
)


async def _suite_consumers(nats_url: str, prefix: str, *, create: bool) -> None:
    """Suites on one NATS server each get their own durable consumers (DEELRX_NATS_CONSUMER_PREFIX),
    so one never takes the other's messages. They are created here starting at the stream's end:
    a new consumer of the services would deliver everything earlier tests published first (the
    services keep an existing consumer as it is and log the difference)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        if create:
            await nats_bus.ensure_streams(js)
        for stream, subject, name in SUITE_CONSUMERS:
            if create:
                config = nats_bus.with_filter(nats_bus.consumer_config(prefix + name), subject)
                config.deliver_policy = DeliverPolicy.NEW
                await js.add_consumer(stream, config=config)
            else:
                try:
                    await js.delete_consumer(stream, prefix + name)
                except NotFoundError:
                    pass
    finally:
        await nc.close()


# A process whose port someone else took first exits at start; the suite or replica then starts
# again on fresh ports (a few times) instead of failing the tests that need it.
START_ATTEMPTS = 3


def listening_ports(env: dict[str, str]) -> list[int]:
    """The ports a suite's processes exit on when they cannot bind them: the gateway's public and
    admin ports and each service's gRPC address (a metrics port that is taken only logs)."""
    ports = [int(env["DEELRX_HTTP_PORT"]), int(env["DEELRX_ADMIN_PORT"])]
    return ports + [int(env[f"DEELRX_{name.upper()}_ADDR"].rsplit(":", 1)[1]) for name in SERVICES]


def _taken(ports: list[int]) -> bool:
    return any(not infra.port_is_free(port) for port in ports)


def _start(env: dict[str, str], log_fd: int) -> tuple[Suite, Settings]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings()
        running = prepare(settings)  # reads DEELRX_DEV_MTLS from the environment
    finally:
        os.environ.clear()
        os.environ.update(saved)
    running.env.update(env)
    running.start_services(stdout=log_fd)
    return running, settings


@contextmanager
def launch_suite(
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    data_dir: Path,
    database: str,
    *,
    scheme: str = "http",
    secret_key: str = "e2e-secret-key-0123456789abcdef-0123456789",
    extra_env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Iterator[RunningSuite]:
    """Start the suite, wait until every service and the gateway are healthy, stop it on exit.
    `database` is "sqlite" (files in `data_dir`) or "postgres" (a fresh database, dropped after)."""
    mailbox, smtp_port = smtp
    fixed = dict(extra_env or {})
    prefix = fixed.setdefault("DEELRX_NATS_CONSUMER_PREFIX", f"suite-{uuid.uuid4().hex[:12]}-")
    asyncio.run(_suite_consumers(infrastructure.nats_url, prefix, create=True))
    pg_name = ""
    if database == "postgres":
        fixed["DEELRX_DATABASE_URL"] = asyncio.run(_create_database(infrastructure.postgres_url))
        pg_name = fixed["DEELRX_DATABASE_URL"].rsplit("/", 1)[1]
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "suite.log"
    log = open(log_path, "ab")
    running: Suite | None = None
    try:
        for attempt in range(START_ATTEMPTS):
            env, http_port, admin_port = suite_env(infrastructure, smtp_port, data_dir, scheme, secret_key)
            env.update(fixed)
            running, settings = _start(env, log.fileno())
            try:
                running.wait_healthy(timeout=timeout)
                break
            except RuntimeError:  # a process exited
                running.stop()
                if attempt == START_ATTEMPTS - 1 or not _taken(listening_ports(env)):
                    raise
        yield RunningSuite(
            base_url=f"http://127.0.0.1:{http_port}",
            mailbox=mailbox,
            nats_url=infrastructure.nats_url,
            redis_url=infrastructure.redis_url,
            settings=settings,
            database=database,
            env=env,
            launcher=running,
            log_path=log_path,
            admin_url=f"http://127.0.0.1:{admin_port}",
        )
    except Exception:
        log.flush()
        print(log_path.read_text(errors="replace")[-20000:])
        raise
    finally:
        if running is not None:
            running.stop()
        log.close()
        try:
            asyncio.run(_suite_consumers(infrastructure.nats_url, prefix, create=False))
        except (OSError, nats.errors.Error):
            pass  # a fault test left its own NATS stopped
        if pg_name:
            try:
                asyncio.run(drop_database(infrastructure.postgres_url, pg_name))
            except OSError:
                pass  # a fault test left its own PostgreSQL stopped: nothing left to drop


@dataclass
class Replica:
    url: str
    admin: str
    proc: subprocess.Popen[bytes]


@contextmanager
def gateway_replica(suite: RunningSuite, log_dir: Path, ready_timeout: float = 60.0, **env: str) -> Iterator[Replica]:
    """One more gateway process on the suite's services (and Redis, unless `env` says otherwise).
    Yields once its public /readyz answers 200; raises when the process exits or /readyz does not
    answer 200 within `ready_timeout` after it listens, so no test runs against a replica that
    does not serve."""
    for attempt in range(START_ATTEMPTS):
        port, admin = infra.free_port(), infra.free_port()
        full = {**os.environ, **suite.env, "DEELRX_HTTP_PORT": str(port), "DEELRX_ADMIN_PORT": str(admin), **env}
        with open(log_dir / f"gateway-{port}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=full, stdout=log, stderr=log)
        try:
            infra.wait_for_port(port, proc=proc, timeout=60)
            infra.wait_for_port(admin, proc=proc, timeout=60)
            break
        except RuntimeError:  # it exited
            if attempt == START_ATTEMPTS - 1 or not _taken([port, admin]):
                raise
        except BaseException:
            _terminate(proc)
            raise
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        # The admin port's /readyz answers like the public one, without spending the public
        # per-IP budget that some tests set to a handful of requests.
        while httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=5).status_code != 200:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway replica exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gateway replica's /readyz did not answer 200 within {ready_timeout}s")
            time.sleep(0.1)
        yield Replica(url, f"http://127.0.0.1:{admin}", proc)
    finally:
        _terminate(proc)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
