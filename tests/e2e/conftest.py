"""The whole suite as separate processes (five services and the gateway, launched the way
`make run` launches them) against the session's NATS, Redis and a SQLite or PostgreSQL
database, with a real SMTP server catching the mail."""

from __future__ import annotations

import asyncio
import email
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from deelrx_kit.settings import SERVICES, Settings
from deploy.local import infra
from deploy.local.launcher import Suite, prepare
from tests.conftest import Infra, _create_database
from tests.e2e.browser import browser  # noqa: F401 - Debian's chromium for the page tests


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server, session, envelope) -> str:
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
    # The launched processes, for tests that stop and restart a service.
    launcher: Suite | None = None

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=20, **kwargs)


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = infra.free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
def suite(
    request: pytest.FixtureRequest,
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningSuite]:
    mailbox, smtp_port = smtp
    data_dir = tmp_path_factory.mktemp(f"suite-{request.param}")
    http_port = infra.free_port()
    env = {
        "DEELRX_DATA_DIR": str(data_dir),
        "DEELRX_NATS_URL": infrastructure.nats_url,
        "DEELRX_REDIS_URL": infrastructure.redis_url,
        "DEELRX_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "DEELRX_HTTP_PORT": str(http_port),
        "DEELRX_ADMIN_PORT": str(infra.free_port()),
        "DEELRX_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        "DEELRX_SECRET_KEY": "e2e-secret-key-0123456789abcdef-0123456789",
        "DEELRX_ARGON2_TIME_COST": "1",
        "DEELRX_ARGON2_MEMORY_COST_KIB": "8192",
        "DEELRX_ARGON2_PARALLELISM": "1",
        "DEELRX_LOG_LEVEL": "INFO",
        # Every test comes from 127.0.0.1, and both suites share one Redis.
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_IP": "10000",
        "DEELRX_RATE_LIMIT_REFRESH_PER_IP": "10000",
        "DEELRX_RATE_LIMIT_PUBLIC_PER_IP": "10000",
        "DEELRX_AUDIT_STREAM_HEARTBEAT_SECONDS": "1",
    }
    for name in SERVICES:
        env[f"DEELRX_{name.upper()}_ADDR"] = f"127.0.0.1:{infra.free_port()}"
        env[f"DEELRX_{name.upper()}_METRICS_PORT"] = str(infra.free_port())
    if request.param == "postgres":
        env["DEELRX_DATABASE_URL"] = asyncio.run(_create_database(infrastructure.postgres_url))
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings()
        running: Suite = prepare(settings)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    running.env.update(env)
    log = open(data_dir / "suite.log", "wb")
    running.start_services(stdout=log.fileno())
    try:
        running.wait_healthy(timeout=90)
        yield RunningSuite(
            f"http://127.0.0.1:{http_port}",
            mailbox,
            infrastructure.nats_url,
            infrastructure.redis_url,
            settings,
            request.param,
            env,
            running,
        )
    except Exception:
        log.flush()
        print(Path(data_dir / "suite.log").read_text()[-20000:])
        raise
    finally:
        running.stop()
        log.close()
