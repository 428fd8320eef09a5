"""Use cases of the sessions service; the only place transactions begin."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx.common.v1 import common_pb2
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError, not_found, validation_error
from deelrx_kit.ids import new_id
from deelrx_kit.outbox import Outbox
from deelrx_kit.periodic import run_every
from deelrx_kit.settings import Settings
from services.sessions.domain import access_token, refresh_tokens
from services.sessions.domain.devices import parse_device
from services.sessions.domain.lifetimes import Lifetime, Liveness, capped_absolute, effective_lifetime, idle_expiry
from services.sessions.domain.records import (
    RefreshTokenRecord,
    RevocationNotice,
    SessionRecord,
    TokenPair,
)
from services.sessions.domain.refresh_tokens import Presentation
from services.sessions.domain.sealing import Sealer, SealError
from services.sessions.key_ring import KeyRing
from services.sessions.ports import RevocationPublisher, SessionStore

log = structlog.get_logger(__name__)

SOURCE = "sessions"
SCOPES = frozenset({"", access_token.MFA_ENROLLMENT_SCOPE})
# Revocations a starting gateway must know: tokens issued before them may still be unexpired.
REVOCATION_MEMORY_MARGIN = timedelta(seconds=60)
MAINTENANCE_INTERVAL_SECONDS = 60.0
# `last_seen_at` is written at most this often per session.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
TOUCH_BATCH_MAX = 1000
_MAX_ID = 40
_MAX_AMR = 10


def _user_agent(ctx: common_pb2.RequestContext) -> str:
    return ctx.user_agent[:512]


class _SessionAudit(TypedDict):
    team_id: str
    actor_user_id: str
    target: tuple[str, str]
    session_id: str


def _about(ctx: common_pb2.RequestContext | None, session_id: str, user_id: str, team_id: str) -> _SessionAudit:
    """Who and what a session's audit event is about: its team is the session's team, never a
    token in it; its actor the caller, else the session's owner."""
    actor = ctx.user_id if ctx is not None and ctx.user_id else user_id
    return _SessionAudit(team_id=team_id, actor_user_id=actor, target=("session", session_id), session_id=session_id)


def _about_session(ctx: common_pb2.RequestContext | None, session: SessionRecord) -> _SessionAudit:
    return _about(ctx, session.id, session.user_id, session.team_id)


@dataclass(frozen=True)
class IssuedSession:
    session: SessionRecord
    tokens: TokenPair
    new_device: bool = False


class SessionUseCases:
    def __init__(
        self,
        *,
        settings: Settings,
        db: async_sessionmaker[AsyncSession],
        store: SessionStore,
        keys: KeyRing,
        revocations: RevocationPublisher,
        outbox: Outbox,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.keys = keys
        self.revocations = revocations
        self.outbox = outbox
        self.audit = AuditTrail(outbox, source=SOURCE, clock=clock)
        self.clock = clock
        self.grace = refresh_tokens.grace_interval(settings.refresh_grace_seconds)
        self.successors = Sealer(settings.secret(), "refresh-successor")

    # -- helpers ----------------------------------------------------------------------
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

    def _access(self, session: SessionRecord, signer: tuple[str, Ed25519PrivateKey], refresh: str) -> TokenPair:
        now = self.clock.now()
        claims = access_token.claims_for(
            session.grant(),
            issuer=self.settings.public_url,
            audience=self.settings.jwt_audience,
            now=now,
            ttl_seconds=self.settings.access_token_ttl_seconds,
            jti=secrets.token_urlsafe(16),
        )
        kid, key = signer
        token = access_token.sign(claims, key, kid)
        expires_in = max(0, int(claims["exp"]) - int(claims["iat"]))
        return TokenPair(
            access_token=token,
            refresh_token=refresh,
            expires_in=expires_in,
            access_expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
        )

    def _touched(self, session: SessionRecord, now: datetime, ip: str) -> SessionRecord:
        return session.but(
            last_seen_at=now,
            ip=(ip or session.ip)[:64],
            idle_expires_at=idle_expiry(now, timedelta(seconds=session.idle_timeout_seconds), session.expires_at),
        )

    async def _live(self, tx: AsyncSession, session_id: str) -> SessionRecord:
        session = await self.store.get_session(tx, session_id, for_update=True) if session_id else None
        if session is None:
            raise not_found("Session not found")
        if session.liveness(self.clock.now()) is not Liveness.LIVE:
            raise DomainError("session_expired")
        return session

    async def _issue_refresh(self, tx: AsyncSession, session: SessionRecord, generation: int) -> str:
        token = refresh_tokens.new_refresh_token()
        await self.store.insert_refresh_token(
            tx,
            RefreshTokenRecord(
                token_hash=refresh_tokens.hash_token(token),
                family_id=session.family_id,
                session_id=session.id,
                generation=generation,
                issued_at=self.clock.now(),
            ),
        )
        return token

    async def _rotate_from(self, tx: AsyncSession, session: SessionRecord, current: RefreshTokenRecord) -> str | None:
        """Rotate `current` to a new token; None when a concurrent request rotated it first."""
        successor = refresh_tokens.new_refresh_token()
        successor_hash = refresh_tokens.hash_token(successor)
        sealed = self.successors.seal(successor.encode(), aad=current.token_hash.encode())
        if not await self.store.mark_rotated(tx, current.token_hash, self.clock.now(), successor_hash, sealed):
            return None
        await self.store.insert_refresh_token(
            tx,
            RefreshTokenRecord(
                token_hash=successor_hash,
                family_id=session.family_id,
                session_id=session.id,
                generation=current.generation + 1,
                issued_at=self.clock.now(),
            ),
        )
        # `current` was itself a successor: now that it is used, its predecessor may no longer
        # hand it out again.
        await self.store.forget_successor_of(tx, session.family_id, current.token_hash)
        return successor

    async def _reissue_refresh(self, tx: AsyncSession, session: SessionRecord) -> str:
        """A new refresh token for a live session (team switch, step-up); the old one is rotated."""
        for _ in range(3):
            current = await self.store.current_refresh_token(tx, session.family_id)
            if current is None:
                return await self._issue_refresh(tx, session, 0)
            token = await self._rotate_from(tx, session, current)
            if token is not None:
                return token
        raise DomainError("conflict", "Concurrent token renewal; try again")

    async def _revoke_in(
        self,
        tx: AsyncSession,
        session_ids: Sequence[str],
        user_id: str,
        reason: str,
        ctx: common_pb2.RequestContext | None,
    ) -> list[str]:
        now = self.clock.now()
        revoked = await self.store.revoke(tx, session_ids, now, reason)
        if not revoked:
            return []
        for sid, team_id in revoked:
            await self.audit.record(
                tx, "session.revoked", ctx, **_about(ctx, sid, user_id, team_id), details={"reason": reason}
            )
            if reason == "logout":
                await self.audit.record(tx, "auth.logout", ctx, **_about(ctx, sid, user_id, team_id))
        ids = tuple(sid for sid, _ in revoked)
        await self.revocations.stage(tx, RevocationNotice(ids, user_id, now, reason))
        return list(ids)

    # -- use cases --------------------------------------------------------------------
    async def create(
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
        if not user_id or len(user_id) > _MAX_ID:
            raise validation_error("/user_id", "a user id is required")
        if len(team_id) > _MAX_ID:
            raise validation_error("/team_id", "not a team id")
        if scope not in SCOPES:
            raise validation_error("/scope", "unknown scope")
        if len(amr) > _MAX_AMR or any(not m or len(m) > 16 for m in amr):
            raise validation_error("/amr", "invalid authentication methods")
        lifetime = self._lifetime(policy_idle_minutes, policy_absolute_hours)
        device = await asyncio.to_thread(parse_device, _user_agent(ctx))
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
        async with transaction(self.db) as tx:
            await self.store.insert_session(tx, session)
            refresh = await self._issue_refresh(tx, session, 0)
            new_device = await self.store.record_device(tx, user_id, device, now)
            await self.audit.record(
                tx,
                "session.created",
                ctx,
                **_about_session(ctx, session),
                details={"device": device.label, "new_device": new_device, "amr": list(amr)},
            )
            if new_device:
                # The user never signed in from this browser/OS/device type before.
                await self.audit.record(
                    tx,
                    "session.new_device",
                    ctx,
                    **_about_session(ctx, session),
                    details={"device": device.label, "browser": device.browser, "os": device.os, "type": device.type},
                )
        self.outbox.notify()
        log.info("session_created", session_id=session.id, new_device=new_device)
        return IssuedSession(session, self._access(session, signer, refresh), new_device)

    async def refresh(self, ctx: common_pb2.RequestContext, token: str) -> IssuedSession:
        if not refresh_tokens.plausible(token):
            raise DomainError("unauthenticated")
        signer = await self.keys.signer()
        token_hash = refresh_tokens.hash_token(token)
        reused: SessionRecord | None = None
        async with transaction(self.db) as tx:
            row = await self.store.get_refresh_token(tx, token_hash)
            session = await self.store.get_session(tx, row.session_id, for_update=True) if row else None
            if row is None or session is None:
                raise DomainError("unauthenticated")
            # Read again under the session lock: a concurrent refresh may have rotated it meanwhile.
            row = await self.store.get_refresh_token(tx, token_hash)
            assert row is not None
            # The time is read under the lock too: read before it, a request that waited behind a
            # concurrent rotation would judge itself as older than that rotation and take its
            # successor even with no grace at all (found by tests/security/test_races.py).
            now = self.clock.now()
            if session.liveness(now) is not Liveness.LIVE:
                raise DomainError("session_expired")
            issued: str | None = None
            verdict = await self._judge(tx, row, now)
            if verdict is Presentation.ROTATE:
                issued = await self._rotate_from(tx, session, row)
                if issued is None:
                    # Lost a race with a concurrent refresh of the same token (the session lock
                    # should prevent it; kept as a safety net): judge it as the rotated one it is.
                    log.info("refresh_rotation_raced", session_id=session.id)
                    row = await self.store.get_refresh_token(tx, token_hash)
                    verdict = await self._judge(tx, row, now) if row else Presentation.REUSE
                    if verdict is Presentation.ROTATE:
                        raise DomainError("unavailable", "Concurrent refresh; try again")
                else:
                    await self.audit.record(tx, "session.refreshed", ctx, **_about_session(ctx, session))
            if verdict is Presentation.RETURN_SUCCESSOR and row is not None and row.successor_sealed is not None:
                try:
                    issued = self.successors.open(row.successor_sealed, aad=token_hash.encode()).decode()
                except SealError:
                    verdict = Presentation.REUSE  # secret changed or row tampered: fail closed
                else:
                    log.info("refresh_replay_in_grace", session_id=session.id)
                    # The successor is handed out again: a client retrying, or a stolen token
                    # raced against its owner. Recorded with where it came from, so the
                    # detector (and the user's activity) can tell.
                    replayer = await asyncio.to_thread(parse_device, _user_agent(ctx))
                    await self.audit.record(
                        tx,
                        "session.refresh_replayed_in_grace",
                        ctx,
                        **_about_session(ctx, session),
                        details={
                            "device": replayer.label,
                            "ip": ctx.client_ip,
                            "session_device": session.device_label,
                            "session_ip": session.ip,
                            "generation": row.generation,
                        },
                    )
            if verdict is Presentation.REUSE:
                reused = session
                await self.audit.record(
                    tx,
                    "session.refresh_reuse_detected",
                    ctx,
                    **_about_session(ctx, session),
                    details={"generation": row.generation if row else None},
                    outcome="failure",
                )
                await self._revoke_in(tx, [session.id], session.user_id, "refresh_token_reuse", ctx)
            elif issued is not None:
                session = self._touched(session, now, ctx.client_ip)
                if not await self.store.save_live_session(tx, session):
                    raise DomainError("session_expired")  # revoked while we rotated: roll back
                await self.store.touch_device(tx, session.user_id, session.device_fingerprint, now)
        if reused is not None:
            await self.revocations.announce([reused.id])
            log.warning("refresh_token_reuse_detected", session_id=reused.id, user_id=reused.user_id)
            raise DomainError("session_expired")
        self.outbox.notify()
        assert issued is not None
        return IssuedSession(session, self._access(session, signer, issued))

    async def _judge(self, tx: AsyncSession, row: RefreshTokenRecord, now: datetime) -> Presentation:
        successor_unused = False
        if row.rotated_at is not None and row.successor_hash and row.successor_sealed is not None:
            successor = await self.store.get_refresh_token(tx, row.successor_hash)
            successor_unused = successor is not None and successor.rotated_at is None
        return refresh_tokens.judge(
            rotated_at=row.rotated_at,
            successor_unused=successor_unused,
            successor_recoverable=row.successor_sealed is not None,
            now=now,
            grace=self.grace,
        )

    async def get(self, session_id: str) -> SessionRecord:
        """A session whatever its state: revoked is flagged, expiry is visible in its times and
        left to the caller (the gateway answers session_expired, an admin view shows history)."""
        async with reading(self.db) as tx:
            session = await self.store.get_session(tx, session_id) if session_id else None
        if session is None:
            raise not_found("Session not found")
        return session

    async def list_sessions(self, user_id: str, team_id: str) -> list[SessionRecord]:
        if not user_id:
            raise validation_error("/user_id", "a user id is required")
        async with reading(self.db) as tx:
            return await self.store.list_live_sessions(tx, user_id, team_id, self.clock.now())

    async def revoke_one(
        self, ctx: common_pb2.RequestContext, session_id: str, owner_user_id: str, reason: str
    ) -> None:
        reason = reason or "unspecified"
        async with transaction(self.db) as tx:
            session = await self.store.get_session(tx, session_id) if session_id else None
            if session is None or (owner_user_id and session.user_id != owner_user_id):
                raise not_found("Session not found")
            revoked = await self._revoke_in(tx, [session.id], session.user_id, reason, ctx)
        await self.revocations.announce(revoked)

    async def revoke_many(
        self, ctx: common_pb2.RequestContext, user_id: str, team_id: str, except_session_id: str, reason: str
    ) -> int:
        if not user_id:
            raise validation_error("/user_id", "a user id is required")
        reason = reason or "unspecified"
        async with transaction(self.db) as tx:
            ids = await self.store.live_session_ids(tx, user_id, team_id, except_session_id, self.clock.now())
            revoked = await self._revoke_in(tx, ids, user_id, reason, ctx)
        await self.revocations.announce(revoked)
        return len(revoked)

    async def switch_team(
        self,
        ctx: common_pb2.RequestContext,
        session_id: str,
        team_id: str,
        policy_idle_minutes: int,
        policy_absolute_hours: int,
    ) -> IssuedSession:
        if len(team_id) > _MAX_ID:
            raise validation_error("/team_id", "not a team id")
        lifetime = self._lifetime(policy_idle_minutes, policy_absolute_hours)
        signer = await self.keys.signer()
        async with transaction(self.db) as tx:
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
            session = self._touched(session, now, ctx.client_ip)
            if not await self.store.save_live_session(tx, session):
                raise DomainError("session_expired")
            refresh = await self._reissue_refresh(tx, session)
            await self.audit.record(
                tx,
                "session.team_switched",
                ctx,
                **_about_session(ctx, session),
                details={"from_team_id": previous_team},
            )
        self.outbox.notify()
        return IssuedSession(session, self._access(session, signer, refresh))

    async def mark_reauthenticated(
        self, ctx: common_pb2.RequestContext, session_id: str, amr: Sequence[str], auth_time: datetime | None
    ) -> IssuedSession:
        if len(amr) > _MAX_AMR or any(not m or len(m) > 16 for m in amr):
            raise validation_error("/amr", "invalid authentication methods")
        signer = await self.keys.signer()
        async with transaction(self.db) as tx:
            session = await self._live(tx, session_id)
            now = self.clock.now()
            session = session.but(
                amr=tuple(amr) or session.amr,
                auth_time=min(auth_time, now) if auth_time else now,
            )
            session = self._touched(session, now, ctx.client_ip)
            if not await self.store.save_live_session(tx, session):
                raise DomainError("session_expired")
            refresh = await self._reissue_refresh(tx, session)
        return IssuedSession(session, self._access(session, signer, refresh))

    async def touch(self, session_ids: Sequence[str]) -> int:
        """Record activity: `last_seen_at` moves only when it is at least a minute old, so it
        is written at most once a minute per session, however many gateways report it."""
        ids = [sid for sid in dict.fromkeys(session_ids) if sid and len(sid) <= _MAX_ID][:TOUCH_BATCH_MAX]
        if not ids:
            return 0
        now = self.clock.now()
        async with transaction(self.db) as tx:
            return await self.store.touch_sessions(tx, ids, now, now - LAST_SEEN_RESOLUTION)

    async def end_enrollment_scope(self, ctx: common_pb2.RequestContext, user_id: str) -> int:
        """The user enabled TOTP: enrollment-only sessions get full tokens at their next refresh."""
        if not user_id or len(user_id) > _MAX_ID:
            raise validation_error("/user_id", "a user id is required")
        async with transaction(self.db) as tx:
            return await self.store.end_scope(tx, user_id, "mfa_enrollment", self.clock.now())

    async def recent_revocations(self) -> list[str]:
        window = timedelta(seconds=self.settings.access_token_ttl_seconds) + REVOCATION_MEMORY_MARGIN
        async with transaction(self.db) as tx:
            return await self.store.revoked_since(tx, self.clock.now() - window)

    async def jwks_json(self) -> str:
        return json.dumps(await self.keys.jwks(), separators=(",", ":"))

    async def maintain(self) -> None:
        """Forget sealed successors past the grace and rewrite recent revocations to Redis if
        a write failed. (Ended sessions and their tokens are purged by services/sessions/purge.py.)"""
        now = self.clock.now()
        async with transaction(self.db) as tx:
            await self.store.forget_stale_successors(tx, now - self.grace)
        if self.revocations.behind:
            self.revocations.behind = False
            await self.revocations.announce(await self.recent_revocations())


async def maintenance_loop(keys: KeyRing, use_cases: SessionUseCases, stop: asyncio.Event) -> None:
    async def maintain() -> None:
        await keys.maintain()
        await use_cases.maintain()

    await run_every(MAINTENANCE_INTERVAL_SECONDS, maintain, stop, name="maintenance")
