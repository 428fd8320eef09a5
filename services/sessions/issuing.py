"""Issuing: starting a session (login), and the changes that issue a new token pair for a
live session: a team switch, a step-up, the end of the enrollment-only scope."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx.common.v1 import common_pb2
from deelrx_kit.clock import Clock
from deelrx_kit.errors import DomainError, not_found, validation_error
from deelrx_kit.ids import new_id
from deelrx_kit.settings import Settings
from services.sessions.domain import access_token
from services.sessions.domain.devices import parse_device
from services.sessions.domain.lifetimes import Lifetime, Liveness, capped_absolute, effective_lifetime, idle_expiry
from services.sessions.domain.records import SessionRecord
from services.sessions.events import SessionEvents
from services.sessions.ports import SessionStore, TokenSigner, Transactions
from services.sessions.tokens import IssuedSession, TokenMint

log = structlog.get_logger(__name__)

SCOPES = frozenset({"", access_token.MFA_ENROLLMENT_SCOPE})
MAX_ID = 40
_MAX_AMR = 10


def _check_amr(amr: Sequence[str]) -> None:
    if len(amr) > _MAX_AMR or any(not m or len(m) > 16 for m in amr):
        raise validation_error("/amr", "invalid authentication methods")


class Issuing:
    def __init__(
        self,
        *,
        settings: Settings,
        transactions: Transactions,
        store: SessionStore,
        keys: TokenSigner,
        mint: TokenMint,
        events: SessionEvents,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.transactions = transactions
        self.store = store
        self.keys = keys
        self.mint = mint
        self.events = events
        self.clock = clock

    def _lifetime(self, idle_minutes: int, absolute_hours: int) -> Lifetime:
        if idle_minutes < 0:
            raise validation_error("/policy/idle_timeout_minutes", "must not be negative")
        if absolute_hours < 0:
            raise validation_error("/policy/absolute_timeout_hours", "must not be negative")
        return effective_lifetime(
            default_idle_minutes=self.settings.session_idle_timeout_minutes,
            default_absolute_hours=self.settings.session_absolute_timeout_hours,
            policy_idle_minutes=idle_minutes,
            policy_absolute_hours=absolute_hours,
        )

    async def _live(self, tx: AsyncSession, session_id: str) -> SessionRecord:
        session = await self.store.get_session(tx, session_id, for_update=True) if session_id else None
        if session is None:
            raise not_found("Session not found")
        if session.liveness(self.clock.now()) is not Liveness.LIVE:
            raise DomainError("session_expired")
        return session

    async def start(
        self,
        ctx: common_pb2.RequestContext,
        *,
        user_id: str,
        team_id: str,
        amr: Sequence[str],
        auth_time: datetime | None,
        scope: str,
        policy_idle_minutes: int,
        policy_absolute_hours: int,
    ) -> IssuedSession:
        if not user_id or len(user_id) > MAX_ID:
            raise validation_error("/user_id", "a user id is required")
        if len(team_id) > MAX_ID:
            raise validation_error("/team_id", "not a team id")
        if scope not in SCOPES:
            raise validation_error("/scope", "unknown scope")
        _check_amr(amr)
        lifetime = self._lifetime(policy_idle_minutes, policy_absolute_hours)
        device = await asyncio.to_thread(parse_device, ctx.user_agent[:512])
        signer = await self.keys.signer()
        now = self.clock.now()
        expires_at = now + lifetime.absolute
        session = SessionRecord(
            id=new_id("ses"),
            user_id=user_id,
            team_id=team_id,
            family_id=new_id("fam"),
            device_browser=device.browser[:100],
            device_os=device.os[:100],
            device_type=device.type,
            device_label=device.label[:210],
            device_fingerprint=device.fingerprint,
            ip=ctx.client_ip[:64],
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            idle_timeout_seconds=int(lifetime.idle.total_seconds()),
            idle_expires_at=idle_expiry(now, lifetime.idle, expires_at),
            amr=tuple(amr),
            # A future auth_time would make step-up checks pass longer than they should.
            auth_time=min(auth_time, now) if auth_time else now,
            scope=scope,
        )
        async with self.transactions.writing() as tx:
            await self.store.insert_session(tx, session)
            refresh = await self.mint.issue_refresh(tx, session, 0)
            new_device = await self.store.record_device(tx, user_id, device, now)
            await self.events.stage(
                tx,
                "session.created",
                ctx,
                session,
                {"device": device.label, "new_device": new_device, "amr": list(amr)},
            )
            if new_device:
                # The user never signed in from this browser/OS/device type before.
                await self.events.stage(
                    tx,
                    "session.new_device",
                    ctx,
                    session,
                    {"device": device.label, "browser": device.browser, "os": device.os, "type": device.type},
                )
        self.events.notify()
        log.info("session_created", session_id=session.id, new_device=new_device)
        return self.mint.issued(session, signer, refresh, new_device)

    async def switch_team(
        self,
        ctx: common_pb2.RequestContext,
        session_id: str,
        team_id: str,
        policy_idle_minutes: int,
        policy_absolute_hours: int,
    ) -> IssuedSession:
        if len(team_id) > MAX_ID:
            raise validation_error("/team_id", "not a team id")
        lifetime = self._lifetime(policy_idle_minutes, policy_absolute_hours)
        signer = await self.keys.signer()
        async with self.transactions.writing() as tx:
            session = await self._live(tx, session_id)
            now = self.clock.now()
            expires_at = capped_absolute(session.created_at, session.expires_at, lifetime)
            if expires_at <= now:
                # The new team allows shorter sessions than this one has lasted already.
                raise DomainError("session_expired")
            # The active team's policy applies (stricter of it and the defaults); the absolute
            # expiry only ever moves earlier.
            previous_team = session.team_id
            session = session.but(
                team_id=team_id, expires_at=expires_at, idle_timeout_seconds=int(lifetime.idle.total_seconds())
            )
            session = self.mint.touched(session, now, ctx.client_ip)
            if not await self.store.save_live_session(tx, session):
                raise DomainError("session_expired")
            refresh = await self.mint.reissue_refresh(tx, session)
            await self.events.stage(tx, "session.team_switched", ctx, session, details={"from_team_id": previous_team})
        self.events.notify()
        return self.mint.issued(session, signer, refresh)

    async def mark_reauthenticated(
        self, ctx: common_pb2.RequestContext, session_id: str, amr: Sequence[str], auth_time: datetime | None
    ) -> IssuedSession:
        _check_amr(amr)
        signer = await self.keys.signer()
        async with self.transactions.writing() as tx:
            session = await self._live(tx, session_id)
            now = self.clock.now()
            session = session.but(
                amr=tuple(amr) or session.amr,
                auth_time=min(auth_time, now) if auth_time else now,
            )
            session = self.mint.touched(session, now, ctx.client_ip)
            if not await self.store.save_live_session(tx, session):
                raise DomainError("session_expired")
            refresh = await self.mint.reissue_refresh(tx, session)
        return self.mint.issued(session, signer, refresh)

    async def end_enrollment_scope(self, ctx: common_pb2.RequestContext, user_id: str) -> int:
        """The user enabled TOTP: enrollment-only sessions get full tokens at their next refresh."""
        if not user_id or len(user_id) > MAX_ID:
            raise validation_error("/user_id", "a user id is required")
        async with self.transactions.writing() as tx:
            return await self.store.end_scope(tx, user_id, access_token.MFA_ENROLLMENT_SCOPE, self.clock.now())
