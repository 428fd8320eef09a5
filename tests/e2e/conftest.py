"""The whole suite as separate processes (five services and the gateway, launched the way
`make run` launches them) against the session's NATS, Redis and a SQLite or PostgreSQL
database, with a real SMTP server catching the mail (tests/suite_launcher.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from deploy.local import infra
from tests.conftest import Infra
from tests.e2e.browser import browser  # noqa: F401 - Debian's chromium for the page tests
from tests.suite_launcher import Mailbox, RunningSuite, launch_suite

__all__ = ["Mailbox", "RunningSuite", "smtp"]


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
    data_dir = tmp_path_factory.mktemp(f"suite-{request.param}")
    with launch_suite(infrastructure, smtp, data_dir, request.param, timeout=90) as running:
        yield running
