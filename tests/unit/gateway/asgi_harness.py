"""The gateway's real ASGI app (pipeline, routes, error mapping) over a real Redis, with the
services behind it replaced by in-process fakes: no service process is started, and no NATS
feed is connected."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import jwt
from google.protobuf.timestamp_pb2 import Timestamp

from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import grpc_errors, redis_keys
from deelrx_kit.errors import DomainError
from deelrx_kit.settings import Settings
from gateway import csrf
from gateway.main import GatewayProcess, bootstrap
from gateway.tokens import AccessClaims, InvalidToken

SECRET_KEY = "test-secret-0123456789abcdef-0123456789"


def rpc_error(error: DomainError) -> grpc.aio.AioRpcError:
    """The error a real service sends: its status and the ErrorDetail trailer."""
    return grpc.aio.AioRpcError(
        error.grpc_status, grpc.aio.Metadata(), grpc.aio.Metadata(*grpc_errors.encode(error)), error.message
    )


class FakeVerifier:
    """Access tokens this test minted, by value (the signature checks have their own tests)."""

    def __init__(self) -> None:
        self.known: dict[str, AccessClaims] = {}

    def mint(
        self, session_id: str, user_id: str, *, lifetime: int = 900, age: int = 0, team_id: str | None = None
    ) -> str:
        now = int(time.time()) - age
        token = f"at_{secrets.token_hex(8)}"
        self.known[token] = AccessClaims(user_id, session_id, team_id, ("pwd",), now, now + lifetime, None, now)
        return token

    async def verify(self, token: str) -> AccessClaims:
        claims = self.known.get(token)
        if claims is None:
            raise InvalidToken()
        if claims.exp <= time.time():
            raise InvalidToken(expired=True)
        return claims


def signed_access_token(session_id: str, user_id: str, lifetime: int = 900) -> str:
    """What sessions' Refresh returns: the gateway reads its claims without the signature."""
    now = int(time.time())
    payload = {"sub": user_id, "sid": session_id, "amr": ["pwd"], "auth_time": now, "iat": now, "exp": now + lifetime}
    return jwt.encode(payload, "unused-key-0123456789abcdef0123456789", algorithm="HS256")


@dataclass
class FakeSessions:
    """The sessions service's RPCs the tested routes call; `refresh_error` makes Refresh fail."""

    refresh_error: DomainError | None = None
    list_error: DomainError | None = None
    refreshed: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    created: list[sessions_pb2.CreateSessionRequest] = field(default_factory=list)
    switched: list[sessions_pb2.SwitchTeamRequest] = field(default_factory=list)

    async def Refresh(self, request: sessions_pb2.RefreshRequest, timeout: float) -> sessions_pb2.RefreshResponse:
        self.refreshed.append(request.refresh_token)
        if self.refresh_error is not None:
            raise rpc_error(self.refresh_error)
        session_id = request.refresh_token.removeprefix("rt_").split(".")[0]
        expires = Timestamp(seconds=int(time.time()) + 3600)
        return sessions_pb2.RefreshResponse(
            session=sessions_pb2.Session(id=session_id, user_id="usr_1", expires_at=expires),
            tokens=sessions_pb2.TokenPair(
                access_token=signed_access_token(session_id, "usr_1"),
                refresh_token=f"rt_{session_id}.{secrets.token_hex(4)}",
                expires_in=900,
            ),
        )

    async def ListSessions(
        self, request: sessions_pb2.ListSessionsRequest, timeout: float
    ) -> sessions_pb2.ListSessionsResponse:
        if self.list_error is not None:
            raise rpc_error(self.list_error)
        return sessions_pb2.ListSessionsResponse()

    async def CreateSession(
        self, request: sessions_pb2.CreateSessionRequest, timeout: float
    ) -> sessions_pb2.CreateSessionResponse:
        self.created.append(request)
        session_id = f"ses_{secrets.token_hex(8)}"
        now = int(time.time())
        session = sessions_pb2.Session(
            id=session_id,
            user_id=request.user_id,
            created_at=Timestamp(seconds=now),
            expires_at=Timestamp(seconds=now + 3600),
            idle_expires_at=Timestamp(seconds=now + 1800),
        )
        return sessions_pb2.CreateSessionResponse(
            session=session,
            tokens=sessions_pb2.TokenPair(
                access_token=signed_access_token(session_id, request.user_id),
                refresh_token=f"rt_{session_id}.x",
                expires_in=900,
            ),
        )

    async def SwitchTeam(
        self, request: sessions_pb2.SwitchTeamRequest, timeout: float
    ) -> sessions_pb2.SwitchTeamResponse:
        self.switched.append(request)
        now = int(time.time())
        session = sessions_pb2.Session(
            id=request.session_id,
            user_id="usr_1",
            team_id=request.team_id,
            created_at=Timestamp(seconds=now),
            expires_at=Timestamp(seconds=now + 3600),
            idle_expires_at=Timestamp(seconds=now + 60 * request.policy.idle_timeout_minutes),
        )
        return sessions_pb2.SwitchTeamResponse(
            session=session,
            tokens=sessions_pb2.TokenPair(
                access_token=signed_access_token(request.session_id, "usr_1"),
                refresh_token=f"rt_{request.session_id}.y",
                expires_in=900,
            ),
        )

    async def RevokeSession(
        self, request: sessions_pb2.RevokeSessionRequest, timeout: float
    ) -> sessions_pb2.RevokeSessionResponse:
        self.revoked.append(request.session_id)
        return sessions_pb2.RevokeSessionResponse()

    async def GetSession(
        self, request: sessions_pb2.GetSessionRequest, timeout: float
    ) -> sessions_pb2.GetSessionResponse:
        now = int(time.time())
        return sessions_pb2.GetSessionResponse(
            session=sessions_pb2.Session(
                id=request.session_id,
                created_at=Timestamp(seconds=now),
                expires_at=Timestamp(seconds=now + 3600),
                idle_expires_at=Timestamp(seconds=now + 1800),
            )
        )


@dataclass
class FakeIdentity:
    """identity.Authenticate answering a complete login with the grant a test sets; GrantForTeam
    answering a team switch with it too, or failing with `switch_error`."""

    grant: identity_pb2.SessionGrant = field(default_factory=identity_pb2.SessionGrant)
    # GetUser's answers: user id -> name (what identity holds now); every user read.
    names: dict[str, str] = field(default_factory=dict)
    user_reads: list[str] = field(default_factory=list)

    async def GetUser(self, request: identity_pb2.GetUserRequest, timeout: float) -> identity_pb2.GetUserResponse:
        self.user_reads.append(request.user_id)
        name = self.names.get(request.user_id, "")
        return identity_pb2.GetUserResponse(user=identity_pb2.User(id=request.user_id, name=name))

    async def GetTeams(self, request: identity_pb2.GetTeamsRequest, timeout: float) -> identity_pb2.GetTeamsResponse:
        return identity_pb2.GetTeamsResponse(
            teams=[identity_pb2.Team(id=team_id, name="Acme", plan="starter") for team_id in request.team_ids]
        )

    switch_error: DomainError | None = None
    grants_asked: list[identity_pb2.GrantForTeamRequest] = field(default_factory=list)
    active_teams: list[str] = field(default_factory=list)

    async def GrantForTeam(
        self, request: identity_pb2.GrantForTeamRequest, timeout: float
    ) -> identity_pb2.GrantForTeamResponse:
        self.grants_asked.append(request)
        if self.switch_error is not None:
            raise rpc_error(self.switch_error)
        # The team's own settings say otherwise: the gateway must follow the grant only.
        team = identity_pb2.Team(
            id=request.team_id,
            name="Acme",
            plan="professional",
            settings=identity_pb2.TeamSettings(session_idle_timeout_minutes=1, mfa_required=True),
        )
        return identity_pb2.GrantForTeamResponse(team=team, session_grant=self.grant)

    async def SetActiveTeam(
        self, request: identity_pb2.SetActiveTeamRequest, timeout: float
    ) -> identity_pb2.SetActiveTeamResponse:
        self.active_teams.append(request.team_id)
        return identity_pb2.SetActiveTeamResponse()

    async def Authenticate(
        self, request: identity_pb2.AuthenticateRequest, timeout: float
    ) -> identity_pb2.AuthenticateResponse:
        return identity_pb2.AuthenticateResponse(
            user=identity_pb2.User(id="usr_1", email=request.email, mfa_enabled=False),
            amr=["pwd"],
            auth_time=Timestamp(seconds=int(time.time())),
            # The team's own settings say otherwise: the gateway must follow the grant only.
            active_team=identity_pb2.Team(
                id="tm_1", settings=identity_pb2.TeamSettings(session_idle_timeout_minutes=1, mfa_required=False)
            ),
            session_grant=self.grant,
        )


@dataclass
class FakeRbac:
    """rbac.GetMembership over the memberships a test sets, (user id, team id) -> role; anyone
    else is a member with `default_role` (None: not a member)."""

    roles: dict[tuple[str, str], str] = field(default_factory=dict)
    default_role: str | None = "staff"

    async def GetMembership(
        self, request: rbac_pb2.GetMembershipRequest, timeout: float
    ) -> rbac_pb2.GetMembershipResponse:
        role = self.roles.get((request.user_id, request.team_id), self.default_role)
        if role is None:
            raise rpc_error(DomainError("not_found", "Membership not found"))
        membership = rbac_pb2.Membership(
            team_id=request.team_id, user_id=request.user_id, role=role, permissions=["customers.read"]
        )
        return rbac_pb2.GetMembershipResponse(membership=membership, revision=1)


@dataclass
class Harness:
    process: GatewayProcess
    verifier: FakeVerifier
    sessions: FakeSessions
    identity: FakeIdentity
    rbac: FakeRbac
    client_ip: str = field(default_factory=lambda: f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}")

    @property
    def gw(self) -> Any:
        return self.process.gw

    def client(self, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.process.app, client=(self.client_ip, 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", cookies=cookies)

    def browser_cookies(self, session_id: str, *, access: str | None, refresh: bool = True) -> dict[str, str]:
        names = self.gw.cookies.names
        cookies = {names.csrf: csrf.token_for(self.gw.secret, session_id)}
        if access is not None:
            cookies[names.session] = access
        if refresh:
            cookies[names.refresh] = f"rt_{session_id}.{secrets.token_hex(4)}"
        return cookies

    async def revoke_in_redis(self, session_id: str) -> None:
        """What the sessions service writes for every revocation (the feed's fallback)."""
        await self.gw.redis.set(redis_keys.revoked_session(session_id), "1", ex=300)


def new_session_id() -> str:
    return f"ses_{secrets.token_hex(8)}"


async def harness(redis_url: str, data_dir: Any) -> AsyncIterator[Harness]:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, secret_key=SECRET_KEY, cors_origins="")
    process = bootstrap(settings)
    verifier, sessions, identity, rbac = FakeVerifier(), FakeSessions(), FakeIdentity(), FakeRbac()
    real_clients = process.gw.clients
    process.gw.verifier = verifier  # type: ignore[assignment]
    process.gw.clients.sessions = sessions  # type: ignore[assignment]
    process.gw.clients.identity = identity  # type: ignore[assignment]
    process.gw.clients.rbac = rbac  # type: ignore[assignment]
    process.gw.activity = None
    yield Harness(process, verifier, sessions, identity, rbac)
    await real_clients.close()
    await process.gw.limiter.breaker.close()
    await process.gw.redis.aclose()
