"""Minting shared by the use cases that hand out tokens: the access JWT, new and rotated
refresh tokens, and the session's activity stamp that goes with every issue."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.clock import Clock
from deelrx_kit.errors import DomainError
from deelrx_kit.settings import Settings
from services.sessions.domain import access_token, refresh_tokens
from services.sessions.domain.lifetimes import idle_expiry
from services.sessions.domain.records import RefreshTokenRecord, SessionRecord, TokenPair
from services.sessions.domain.sealing import Sealer, SealError
from services.sessions.ports import SessionStore

Signer = tuple[str, Ed25519PrivateKey]


@dataclass(frozen=True)
class IssuedSession:
    session: SessionRecord
    tokens: TokenPair
    new_device: bool = False


class TokenMint:
    def __init__(self, settings: Settings, store: SessionStore, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        # Successors are kept sealed during the grace interval, so a replay can get them again.
        self.successors = Sealer(settings.secret(), "refresh-successor")

    def access(self, session: SessionRecord, signer: Signer, refresh: str) -> TokenPair:
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

    def issued(self, session: SessionRecord, signer: Signer, refresh: str, new_device: bool = False) -> IssuedSession:
        return IssuedSession(session, self.access(session, signer, refresh), new_device)

    @staticmethod
    def touched(session: SessionRecord, now: datetime, ip: str) -> SessionRecord:
        return session.but(
            last_seen_at=now,
            ip=(ip or session.ip)[:64],
            idle_expires_at=idle_expiry(now, timedelta(seconds=session.idle_timeout_seconds), session.expires_at),
        )

    async def issue_refresh(self, tx: AsyncSession, session: SessionRecord, generation: int) -> str:
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

    async def rotate_from(self, tx: AsyncSession, session: SessionRecord, current: RefreshTokenRecord) -> str | None:
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

    def open_successor(self, token: RefreshTokenRecord) -> str | None:
        """The sealed successor of a rotated token; None when there is none or it does not
        open (the secret changed or the row was tampered with: the caller fails closed)."""
        if token.successor_sealed is None:
            return None
        try:
            return self.successors.open(token.successor_sealed, aad=token.token_hash.encode()).decode()
        except SealError:
            return None

    async def reissue_refresh(self, tx: AsyncSession, session: SessionRecord) -> str:
        """A new refresh token for a live session (team switch, step-up); the old one is rotated."""
        for _ in range(3):
            current = await self.store.current_refresh_token(tx, session.family_id)
            if current is None:
                return await self.issue_refresh(tx, session, 0)
            token = await self.rotate_from(tx, session, current)
            if token is not None:
                return token
        raise DomainError("conflict", "Concurrent token renewal; try again")
