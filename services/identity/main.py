"""Wiring: settings + adapters + servicer onto a ServiceRuntime. Nothing connects at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deelrx.identity.v1 import identity_pb2_grpc
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.outbox import Outbox
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.identity.account_holds import AccountHolds
from services.identity.adapters.argon2_hasher import Argon2Hasher
from services.identity.adapters.mail_relay import MailRelay
from services.identity.adapters.mailer import mailer_from_settings
from services.identity.adapters.sql import MailOutboxRepository
from services.identity.adapters.sql import outbox as outbox_table
from services.identity.app import IdentityApp, IdentityConfig
from services.identity.grpc_api import IdentityServicer
from services.identity.mfa_app import MfaUseCases
from services.identity.ports import Mailer
from services.identity.purge import run_purges


def bootstrap(
    settings: Settings,
    *,
    grpc_port: int | None = None,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
) -> ServiceRuntime:
    clock = clock or SystemClock()
    rt = ServiceRuntime("identity", settings, grpc_port=grpc_port)
    sessionmaker = rt.use_database(Path(__file__).parent / "migrations")
    outbox = Outbox(outbox_table, clock)
    rt.use_outbox(outbox)
    keyring = settings.keyring()
    relay = MailRelay(sessionmaker, mailer or mailer_from_settings(settings), clock, keyring=keyring)
    rt.add_task(relay.run)
    hasher = Argon2Hasher.from_settings(settings)
    app = IdentityApp(
        config=IdentityConfig(
            public_url=settings.public_url,
            email_token_ttl=timedelta(hours=settings.email_token_ttl_hours),
            secret=settings.secret(),
        ),
        sessionmaker=sessionmaker,
        clock=clock,
        hasher=hasher,
        outbox=outbox,
        mail_sent=relay.notify,
    )
    app.mails = MailOutboxRepository(keyring)  # bodies sealed at rest
    app.mfa = MfaUseCases(
        app,
        keyring=keyring,
        code_hasher=hasher,
        challenge_ttl=timedelta(seconds=settings.mfa_token_ttl_seconds),
    )
    app.holds = AccountHolds(app, code_ttl=timedelta(seconds=settings.mfa_token_ttl_seconds))
    rt.add_task(lambda stop: run_purges(sessionmaker, clock, stop))
    rt.grpc.add(
        identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        IdentityServicer(app),
        "deelrx.identity.v1.IdentityService",
    )
    return rt


def main() -> None:
    run(bootstrap, "identity")
