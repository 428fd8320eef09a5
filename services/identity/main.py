"""Wiring: settings + adapters + use cases + servicer onto a ServiceRuntime. Nothing connects at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deelrx.identity.v1 import identity_pb2_grpc
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.outbox import Outbox
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.identity.adapters.account_holds import SqlAccountHoldStore
from services.identity.adapters.argon2_hasher import Argon2Hasher
from services.identity.adapters.database import SqlDatabase
from services.identity.adapters.invitations import SqlInvitationStore
from services.identity.adapters.mail_outbox import SqlMailOutbox
from services.identity.adapters.mail_relay import MailRelay
from services.identity.adapters.mailer import mailer_from_settings
from services.identity.adapters.mfa_challenges import SqlMfaChallengeStore
from services.identity.adapters.password_resets import SqlPasswordResetStore
from services.identity.adapters.recovery_codes import SqlRecoveryCodeStore
from services.identity.adapters.signups import SqlPendingSignupStore
from services.identity.adapters.tables import outbox as outbox_table
from services.identity.adapters.teams import SqlTeamStore
from services.identity.adapters.throttles import SqlLoginThrottle, SqlMailThrottle
from services.identity.adapters.totp import SqlTotpStore
from services.identity.adapters.users import SqlCredentialStore, SqlUserStore
from services.identity.app import IdentityApp
from services.identity.grpc_api import IdentityServicer
from services.identity.ports import Mailer, Stores
from services.identity.purge import run_purges
from services.identity.use_cases.core import SOURCE, Core, IdentityConfig

NAME = "identity"


def bootstrap(
    settings: Settings,
    *,
    grpc_port: int | None = None,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
) -> ServiceRuntime:
    clock = clock or SystemClock()
    rt = ServiceRuntime(NAME, settings, grpc_port=grpc_port)
    sessionmaker = rt.use_database(Path(__file__).parent / "migrations")
    events = Outbox(outbox_table, clock)
    rt.use_outbox(events)
    keyring = settings.keyring()
    relay = MailRelay(sessionmaker, mailer or mailer_from_settings(settings), clock, keyring=keyring)
    rt.add_task(relay.run)
    rt.add_task(lambda stop: run_purges(sessionmaker, clock, stop))
    hasher = Argon2Hasher.from_settings(settings)
    stores = Stores(
        users=SqlUserStore(),
        credentials=SqlCredentialStore(),
        signups=SqlPendingSignupStore(),
        teams=SqlTeamStore(),
        invitations=SqlInvitationStore(),
        login_throttle=SqlLoginThrottle(),
        mail_throttle=SqlMailThrottle(),
        mails=SqlMailOutbox(keyring),  # bodies sealed at rest
        resets=SqlPasswordResetStore(),
        challenges=SqlMfaChallengeStore(),
        totp=SqlTotpStore(),
        recovery_codes=SqlRecoveryCodeStore(),
        holds=SqlAccountHoldStore(),
    )
    core = Core(
        config=IdentityConfig(
            public_url=settings.public_url,
            email_token_ttl=timedelta(hours=settings.email_token_ttl_hours),
            secret=settings.secret(),
            mfa_challenge_ttl=timedelta(seconds=settings.mfa_token_ttl_seconds),
        ),
        db=SqlDatabase(sessionmaker),
        stores=stores,
        clock=clock,
        hasher=hasher,
        events=events,
        audit=AuditTrail(events, source=SOURCE, clock=clock),
        mail_sent=relay.notify,
    )
    app = IdentityApp.build(
        core, sealer=keyring, code_hasher=hasher, mailed_code_ttl=timedelta(seconds=settings.mfa_token_ttl_seconds)
    )
    rt.grpc.add(
        identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        IdentityServicer(app),
        "deelrx.identity.v1.IdentityService",
    )
    return rt


def main() -> None:
    run(bootstrap, NAME)
