"""The attack, fuzz, race and fault suites run against the whole product as separate processes
(five services and the gateway), like tests/e2e, with a real SMTP server catching the mail.

`suite` runs on SQLite and on PostgreSQL; a module that proves something the database does not
change narrows it with `pytest.mark.parametrize("suite", ["sqlite"], indirect=True)`.
`https_suite` is a whole second product whose public URL is https (cookies with `__Host-`,
`Secure`, HSTS): the test process still speaks plain http to the gateway on loopback, as a TLS
terminating proxy in front of it would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Infra
from tests.e2e.conftest import Mailbox, RunningSuite, smtp
from tests.e2e.flows import PASSWORD, new_email
from tests.suite_launcher import launch_suite

__all__ = ["LiveSuite", "smtp"]

# A running product plus what the fault tests need: its processes (`launcher`) and its log.
LiveSuite = RunningSuite
SECRET_KEY = "security-secret-key-0123456789abcdef-0123"


@contextmanager
def start_suite(
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    data_dir: Path,
    database: str,
    scheme: str = "http",
    extra_env: dict[str, str] | None = None,
) -> Iterator[LiveSuite]:
    with launch_suite(
        infrastructure, smtp, data_dir, database, scheme=scheme, secret_key=SECRET_KEY, extra_env=extra_env
    ) as running:
        yield running


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
def suite(
    request: pytest.FixtureRequest,
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveSuite]:
    with start_suite(infrastructure, smtp, tmp_path_factory.mktemp(f"security-{request.param}"), request.param) as s:
        yield s


@pytest.fixture(scope="package")
def https_suite(
    infrastructure: Infra,
    smtp: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveSuite]:
    with start_suite(infrastructure, smtp, tmp_path_factory.mktemp("security-https"), "sqlite", "https") as s:
        yield s


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
