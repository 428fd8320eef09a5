"""Wiring of the sessions service: settings + adapters + servicer on one ServiceRuntime."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from deelrx.sessions.v1 import sessions_pb2_grpc
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock, SystemClock
from deelrx_kit.outbox import Outbox
from deelrx_kit.redis_url import connect_redis
from deelrx_kit.runtime import ServiceRuntime, run
from deelrx_kit.settings import Settings
from services.sessions.adapters.revocations import RedisNatsRevocations
from services.sessions.adapters.sql import (
    SqlSessionReads,
    SqlSessionStore,
    SqlSigningKeyStore,
    SqlTransactions,
    outbox,
)
from services.sessions.domain.sealing import Sealer
from services.sessions.domain.signing_keys import RotationSchedule
from services.sessions.events import SOURCE, SessionEvents
from services.sessions.grpc_api import SessionsServicer
from services.sessions.heartbeat import heartbeat_loop
from services.sessions.issuing import Issuing
from services.sessions.listing import Listing
from services.sessions.maintenance import maintenance_loop
from services.sessions.member_removals import DURABLE as REMOVALS_DURABLE
from services.sessions.member_removals import SUBJECT as REMOVALS_SUBJECT
from services.sessions.member_removals import MemberRemovals
from services.sessions.password_changes import DURABLE as PASSWORDS_DURABLE
from services.sessions.password_changes import SUBJECT as PASSWORDS_SUBJECT
from services.sessions.password_changes import PasswordChanges
from services.sessions.purge import run_purges
from services.sessions.refresh import Refresh
from services.sessions.revocation import Revocation
from services.sessions.signing import SigningKeys
from services.sessions.tokens import TokenMint

NAME = "sessions"


def bootstrap(settings: Settings, *, grpc_port: int | None = None, clock: Clock | None = None) -> ServiceRuntime:
    clock = clock or SystemClock()
    rt = ServiceRuntime(NAME, settings, grpc_port=grpc_port)
    db = rt.use_database(Path(__file__).parent / "migrations")
    events = Outbox(outbox, clock)
    rt.use_outbox(events)
    # redis.asyncio connects lazily, on the first command.
    redis = connect_redis(settings.redis_url)  # any DEELRX_REDIS_URL form, short timeouts
    rt.on_stop(redis.aclose)
    schedule = RotationSchedule(
        sign_for=timedelta(seconds=settings.signing_key_rotation_seconds),
        publish_ahead=timedelta(seconds=settings.signing_key_publish_ahead_seconds),
    )
    transactions = SqlTransactions(db)
    store = SqlSessionStore()
    keys = SigningKeys(
        transactions,
        SqlSigningKeyStore(),
        Sealer(settings.secret(), "signing-key"),
        clock,
        settings.access_token_ttl_seconds,
        schedule,
    )
    revocations = RedisNatsRevocations(redis, events, settings.access_token_ttl_seconds)
    audit = SessionEvents(AuditTrail(events, source=SOURCE, clock=clock))
    mint = TokenMint(settings, store, clock)
    revocation = Revocation(
        settings=settings,
        transactions=transactions,
        store=store,
        revocations=revocations,
        events=audit,
        clock=clock,
    )
    issuing = Issuing(
        settings=settings, transactions=transactions, store=store, keys=keys, mint=mint, events=audit, clock=clock
    )
    refresh = Refresh(
        transactions=transactions,
        store=store,
        keys=keys,
        mint=mint,
        revocation=revocation,
        events=audit,
        clock=clock,
        grace_seconds=settings.refresh_grace_seconds,
    )
    # GetSession (every /v1/auth/me) is one statement: `db.single_read`, no transaction set-up.
    assert rt.engine is not None
    listing = Listing(transactions=transactions, store=store, reads=SqlSessionReads(rt.engine), clock=clock)
    rt.add_task(lambda stop: maintenance_loop(keys, refresh, revocation, stop))
    rt.add_task(lambda stop: run_purges(db, clock, stop))
    rt.add_task(lambda stop: heartbeat_loop(db, revocations, events, clock, stop))
    # A removed member's team sessions die even if the remover failed before revoking them.
    removals = MemberRemovals(revocation)
    rt.add_consumer(stream="AUDIT", subject=REMOVALS_SUBJECT, durable=REMOVALS_DURABLE, handler=removals.on_event)
    # A password reset or change ends the older sessions even if the gateway's revocation failed.
    passwords = PasswordChanges(revocation)
    rt.add_consumer(stream="AUDIT", subject=PASSWORDS_SUBJECT, durable=PASSWORDS_DURABLE, handler=passwords.on_event)
    rt.grpc.add(
        sessions_pb2_grpc.add_SessionsServiceServicer_to_server,
        SessionsServicer(issuing=issuing, refresh=refresh, listing=listing, revocation=revocation, keys=keys),
        "deelrx.sessions.v1.SessionsService",
    )
    return rt


def main() -> None:
    run(bootstrap, NAME)
