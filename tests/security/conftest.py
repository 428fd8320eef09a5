"""The attack, fuzz, race and fault suites run against the whole product as separate processes
(five services and the gateway), like tests/e2e, with a real SMTP server catching the mail.

`suite` runs on SQLite and on PostgreSQL; a module that proves something the database does not
change narrows it with `pytest.mark.parametrize("suite", ["sqlite"], indirect=True)`.
`https_suite` is a whole second product whose public URL is https (cookies with `__Host-`,
`Secure`, HSTS): the test process still speaks plain http to the gateway on loopback, as a TLS
terminating proxy in front of it would."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deelrx_kit.settings import SERVICES, Settings
from deploy.local import infra
from deploy.local.launcher import Suite, prepare
from tests.conftest import Infra, _create_database
from tests.e2e.conftest import Mailbox, RunningSuite, smtp
from tests.e2e.flows import PASSWORD, new_email

__all__ = ["LiveSuite", "smtp"]


@dataclass
class LiveSuite(RunningSuite):
    """A running product plus what the fault tests need: its processes and its log."""

    processes: Suite | None = None
    log_path: Path | None = None
    admin_url: str = ""


def start_suite(
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    data_dir: Path,
    database: str,
    scheme: str = "http",
    extra_env: dict[str, str] | None = None,
) -> Iterator[LiveSuite]:
    mailbox, smtp_port = smtp
    http_port = infra.free_port()
    admin_port = infra.free_port()
    env = {
        "DEELRX_DATA_DIR": str(data_dir),
        "DEELRX_NATS_URL": infrastructure.nats_url,
        "DEELRX_REDIS_URL": infrastructure.redis_url,
        "DEELRX_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "DEELRX_HTTP_PORT": str(http_port),
        "DEELRX_ADMIN_PORT": str(admin_port),
        "DEELRX_PUBLIC_URL": f"{scheme}://127.0.0.1:{http_port}",
        "DEELRX_SECRET_KEY": "security-secret-key-0123456789abcdef-0123",
        "DEELRX_ARGON2_TIME_COST": "1",
        "DEELRX_ARGON2_MEMORY_COST_KIB": "8192",
        "DEELRX_ARGON2_PARALLELISM": "1",
        "DEELRX_LOG_LEVEL": "INFO",
        # Every test comes from 127.0.0.1 and the suites share one Redis.
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_IP": "100000",
        "DEELRX_RATE_LIMIT_ANONYMOUS_PER_ACCOUNT": "100000",
    }
    env.update(extra_env or {})
    for name in SERVICES:
        env[f"DEELRX_{name.upper()}_ADDR"] = f"127.0.0.1:{infra.free_port()}"
        env[f"DEELRX_{name.upper()}_METRICS_PORT"] = str(infra.free_port())
    if database == "postgres":
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
    log_path = data_dir / "suite.log"
    log = open(log_path, "ab")
    running.start_services(stdout=log.fileno())
    try:
        running.wait_healthy(timeout=120)
        yield LiveSuite(
            base_url=f"http://127.0.0.1:{http_port}",
            mailbox=mailbox,
            nats_url=infrastructure.nats_url,
            redis_url=infrastructure.redis_url,
            settings=settings,
            database=database,
            env=env,
            processes=running,
            log_path=log_path,
            admin_url=f"http://127.0.0.1:{admin_port}",
        )
    except Exception:
        log.flush()
        print(log_path.read_text()[-20000:])
        raise
    finally:
        running.stop()
        log.close()


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
def suite(
    request: pytest.FixtureRequest,
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveSuite]:
    data_dir = tmp_path_factory.mktemp(f"security-{request.param}")
    yield from start_suite(infrastructure, smtp, data_dir, request.param)


@pytest.fixture(scope="package")
def https_suite(
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveSuite]:
    yield from start_suite(infrastructure, smtp, tmp_path_factory.mktemp("security-https"), "sqlite", "https")


@dataclass
class Account:
    email: str
    user_id: str
    access_token: str
    refresh_token: str
    session_id: str


def verified_email(suite: RunningSuite, client: httpx.Client, headers: dict[str, str] | None = None) -> str:
    email = new_email()
    mark = suite.mailbox.mark()
    r = client.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "Mallory"}, headers=headers or {}
    )
    assert r.status_code == 201, r.text
    token = suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)
    r = client.post("/v1/auth/verify-email", json={"token": token}, headers=headers or {})
    assert r.status_code == 200, r.text
    return email


def bearer_account(suite: RunningSuite, client: httpx.Client | None = None) -> Account:
    """A verified account with a session whose tokens came in the body."""
    own = client is None
    client = client or suite.client()
    try:
        email = verified_email(suite, client)
        return bearer_login(client, email)
    finally:
        if own:
            client.close()


def bearer_login(client: httpx.Client, email: str) -> Account:
    r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
    assert r.status_code == 200, r.text
    body = r.json()
    return Account(email, body["user"]["id"], body["access_token"], body["refresh_token"], body["session"]["id"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
