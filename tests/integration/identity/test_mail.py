"""Mail delivery through a real SMTP server (aiosmtpd), including retries while it is down."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from deelrx.identity.v1 import identity_pb2 as pb
from deelrx.identity.v1 import identity_pb2_grpc
from deelrx_kit.clock import FrozenClock
from deploy.local.infra import free_port
from services.identity.adapters.tables import mail_outbox
from tests.integration.harness import eventually

from .conftest import PASSWORD, call, ctx, make_settings, start_identity, token_of


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    async def wait(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        return await eventually(lambda: self.messages, lambda got: len(got) >= count, timeout)


@pytest.fixture
def smtp_port() -> int:
    return free_port()


def start_smtp(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox


@pytest.fixture
def smtp_server(smtp_port: int) -> Iterator[Inbox]:
    controller, inbox = start_smtp(smtp_port)
    yield inbox
    controller.stop()


async def test_verification_mail_goes_out_over_smtp(
    tmp_path, database_url, nats_url, redis_url, smtp_port, smtp_server: Inbox
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        nats_url,
        redis_url,
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        mail_from="DeelRx <auth@deelrx.test>",
    )
    rt, chan = await start_identity(settings, FrozenClock())
    stub = identity_pb2_grpc.IdentityServiceStub(chan)
    try:
        await call(
            stub.StartSignup,
            pb.StartSignupRequest(context=ctx(), email="smtp@example.com", password=PASSWORD, name="S"),
        )
        [message] = await smtp_server.wait(1)
        assert message["To"] == "smtp@example.com" and message["From"] == "DeelRx <auth@deelrx.test>"
        token = token_of(message)
        verified = await call(stub.VerifyEmail, pb.VerifyEmailRequest(token=token))
        assert verified.user_id.startswith("usr_")
        assert not (tmp_path / "mail").exists()  # nothing written to files when SMTP is configured
    finally:
        await chan.close()
        await rt.stop()


async def test_mail_waits_in_the_outbox_while_smtp_is_down(
    tmp_path, postgres_url, nats_url, redis_url, smtp_port
) -> None:
    clock = FrozenClock()
    settings = make_settings(tmp_path, postgres_url, nats_url, redis_url, smtp_url=f"smtp://127.0.0.1:{smtp_port}")
    rt, chan = await start_identity(settings, clock)
    stub = identity_pb2_grpc.IdentityServiceStub(chan)
    controller = None
    try:
        await call(stub.StartSignup, pb.StartSignupRequest(email="later@example.com", password=PASSWORD, name="L"))

        # The first attempt fails (nothing listens yet) and the mail stays staged.
        async def staged() -> list[Any]:
            async with rt.sessionmaker() as session:
                return list((await session.execute(select(mail_outbox.c.attempts, mail_outbox.c.last_error))).all())

        pending = await eventually(staged, lambda rows: bool(rows) and rows[0].attempts >= 1)
        assert len(pending) == 1 and pending[0].attempts >= 1 and pending[0].last_error
        controller, inbox = start_smtp(smtp_port)
        assert inbox.messages == []
        clock.advance(seconds=5)  # past the first retry delay
        [message] = await inbox.wait(1)
        assert token_of(message)
    finally:
        if controller is not None:
            controller.stop()
        await chan.close()
        await rt.stop()


async def test_file_mailer_logs_where_the_mail_is_but_not_the_link(tmp_path) -> None:
    from structlog.testing import capture_logs

    from services.identity.adapters.mailer import FileMailer
    from services.identity.domain.mail import verification_mail

    mail = verification_mail("ann@example.com", "Ann", "https://auth.example.test", "s3cr3t-token-value", 24)
    with capture_logs() as logs:
        await FileMailer(tmp_path / "mail", "DeelRx <a@b.test>").send(mail, message_id="01abc")
    [line] = [entry for entry in logs if entry["event"] == "mail_written"]
    assert line["mail_id"] == "01abc" and line["path"].endswith("01abc.eml")
    assert "s3cr3t-token-value" not in repr(logs) and "ann@example.com" not in repr(logs)
    assert b"verify-email?token=s3cr3t-token-value" in (tmp_path / "mail" / "01abc.eml").read_bytes()
