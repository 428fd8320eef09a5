"""A real identity gRPC server in-process, on SQLite and PostgreSQL, with real NATS."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2 as pb
from deelrx.identity.v1 import identity_pb2_grpc
from deelrx_kit.clock import FrozenClock
from deelrx_kit.errors import DomainError
from deelrx_kit.grpc_server import channel
from deelrx_kit.runtime import ServiceRuntime
from deelrx_kit.settings import Settings
from services.identity.main import bootstrap
from tests.integration.harness import PUBLIC_URL, call, domain_error, eventually, make_settings

__all__ = ["PUBLIC_URL", "call", "make_settings"]

PASSWORD = "velvet-thunder-orchard-42"
TOKEN_RE = re.compile(r"/verify-email\?token=([A-Za-z0-9_\-%]+)")


def ctx(ip: str = "198.51.100.7") -> common_pb2.RequestContext:
    return common_pb2.RequestContext(request_id="req-test", client_ip=ip, user_agent="pytest")


@dataclass
class Identity:
    rt: ServiceRuntime
    stub: identity_pb2_grpc.IdentityServiceStub
    settings: Settings
    clock: FrozenClock
    mail_dir: Path

    async def mails_to(self, address: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        """Wait for at least `count` mails to `address` (the file mailer's .eml files)."""
        return await eventually(lambda: self.read_mails_to(address), lambda found: len(found) >= count, timeout)

    def read_mails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self._read_mails() if str(m["To"]).lower() == address.lower()]

    def _read_mails(self) -> list[EmailMessage]:
        if not self.mail_dir.exists():
            return []
        messages = []
        for path in sorted(self.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            messages.append(message)
        return messages

    async def signup(
        self, address: str, password: str = PASSWORD, name: str = "Ada Lovelace", ip: str = "198.51.100.7"
    ) -> str:
        """Start a sign-up and return the token of the newest verification mail."""
        before = len(await self.mails_to(address, 0, 0))
        await call(
            self.stub.StartSignup, pb.StartSignupRequest(context=ctx(ip), email=address, password=password, name=name)
        )
        mails = await self.mails_to(address, before + 1)
        assert len(mails) == before + 1
        return token_of(mails[-1])

    async def account(self, address: str, password: str = PASSWORD, name: str = "Ada Lovelace") -> str:
        token = await self.signup(address, password, name)
        response = await call(self.stub.VerifyEmail, pb.VerifyEmailRequest(context=ctx(), token=token))
        return str(response.user_id)

    async def login(self, address: str, password: str = PASSWORD, ip: str = "198.51.100.7") -> pb.AuthenticateResponse:
        return await call(
            self.stub.Authenticate, pb.AuthenticateRequest(context=ctx(ip), email=address, password=password)
        )

    async def login_error(self, address: str, password: str, ip: str = "198.51.100.7") -> DomainError:
        return await domain_error(
            self.stub.Authenticate(pb.AuthenticateRequest(context=ctx(ip), email=address, password=password))
        )


def token_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = TOKEN_RE.search(body.get_content())
    assert match, "no verification link in the mail"
    from urllib.parse import unquote

    return unquote(match.group(1))


async def start_identity(settings: Settings, clock: FrozenClock, **kwargs: Any) -> tuple[ServiceRuntime, Any]:
    rt = bootstrap(settings, grpc_port=0, clock=clock, **kwargs)
    await rt.start()
    return rt, channel(f"127.0.0.1:{rt.grpc.port}")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def identity(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str, clock: FrozenClock
) -> AsyncIterator[Identity]:
    settings = make_settings(tmp_path, database_url, nats_url, redis_url)
    rt, chan = await start_identity(settings, clock)
    try:
        yield Identity(rt, identity_pb2_grpc.IdentityServiceStub(chan), settings, clock, tmp_path / "mail")
    finally:
        await chan.close()
        await rt.stop()
