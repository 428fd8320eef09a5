"""The shapes the sessions service stores and reasons about."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.sessions.domain.access_token import AccessGrant
from services.sessions.domain.lifetimes import Liveness, liveness


@dataclass(frozen=True)
class SessionRecord:
    id: str
    user_id: str
    team_id: str  # "" when the session has no active team
    family_id: str  # the refresh family living and dying with this session
    device_browser: str
    device_os: str
    device_type: str
    device_label: str
    device_fingerprint: str
    ip: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # absolute; never moves later
    idle_timeout_seconds: int
    idle_expires_at: datetime
    amr: tuple[str, ...]
    auth_time: datetime
    scope: str
    revoked_at: datetime | None = None
    revoke_reason: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def liveness(self, now: datetime) -> Liveness:
        return liveness(now=now, revoked=self.revoked, idle_expires_at=self.idle_expires_at, expires_at=self.expires_at)

    def grant(self) -> AccessGrant:
        return AccessGrant(
            user_id=self.user_id,
            session_id=self.id,
            team_id=self.team_id,
            amr=self.amr,
            auth_time=self.auth_time,
            scope=self.scope,
            session_expires_at=self.expires_at,
        )

    def but(self, **changes: object) -> SessionRecord:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RefreshTokenRecord:
    token_hash: str
    family_id: str
    session_id: str
    generation: int
    issued_at: datetime
    rotated_at: datetime | None = None
    successor_hash: str | None = None
    # The successor token, sealed, kept only while it may still be handed out again (grace).
    successor_sealed: bytes | None = None


@dataclass(frozen=True)
class SigningKeyRecord:
    kid: str
    public_raw: bytes
    private_sealed: bytes
    active: bool
    created_at: datetime  # published since
    retired_at: datetime | None
    activated_at: datetime | None = None  # signing since; None while only published
    withdrawn_at: datetime | None = None  # emergency rotation: out of the JWKS at once


@dataclass(frozen=True)
class RevocationNotice:
    """What `sessions.revoked` tells every gateway replica."""

    session_ids: tuple[str, ...]
    user_id: str
    revoked_at: datetime
    reason: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    access_expires_at: datetime
