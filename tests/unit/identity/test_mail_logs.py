"""Logs name mails by id and never carry email addresses unless PII logging is switched on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import structlog

from deelrx_kit.logging import configure_logging
from services.identity.adapters import mailer
from services.identity.adapters.mailer import FileMailer
from services.identity.domain.mail import OutgoingMail

ADDRESS = "katherine.johnson@example.org"


@pytest.fixture
def isolated_logging(monkeypatch):
    # Module loggers cache the stream of the first configuration; give the mailer a fresh one.
    monkeypatch.setattr(mailer, "log", structlog.get_logger("mailer-test"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def _records(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


async def test_mail_logs_name_the_mail_not_the_address(tmp_path: Path, capsys, isolated_logging) -> None:
    configure_logging("identity", "INFO")
    mail = OutgoingMail(to=ADDRESS, subject="Confirm your email", text="hello")
    await FileMailer(tmp_path, "DeelRx <no-reply@deelrx.local>").send(mail, message_id="01MAILID")
    # An address that reaches a log by accident (e.g. in a relay's error text) is masked too.
    structlog.get_logger("relay").warning("mail_delivery_failed", error=f"550 <{ADDRESS}>: mailbox unavailable")
    out = _records(capsys)
    assert ADDRESS not in json.dumps(out)
    assert out[0]["msg"] == "mail_written" and out[0]["mail_id"] == "01MAILID"
    assert "[email]" in out[1]["error"]


async def test_addresses_are_logged_only_with_the_pii_switch(tmp_path: Path, capsys, isolated_logging) -> None:
    configure_logging("identity", "DEBUG", log_pii=True)
    mail = OutgoingMail(to=ADDRESS, subject="Confirm your email", text="hello")
    await FileMailer(tmp_path, "DeelRx <no-reply@deelrx.local>", log_pii=True).send(mail, message_id="01MAILID")
    assert _records(capsys)[0]["to"] == ADDRESS
