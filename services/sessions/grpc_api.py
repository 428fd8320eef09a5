"""gRPC servicer: protobuf in, use case, protobuf out. Nothing else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit import timestamps
from deelrx_kit.timestamps import to_timestamp
from services.sessions.domain.records import SessionRecord, TokenPair
from services.sessions.issuing import Issuing
from services.sessions.listing import Listing
from services.sessions.refresh import Refresh
from services.sessions.revocation import Revocation
from services.sessions.signing import SigningKeys
from services.sessions.tokens import IssuedSession


def _optional_time(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    ts: Timestamp = getattr(message, field)
    return timestamps.to_datetime(ts, field)


def session_message(s: SessionRecord) -> sessions_pb2.Session:
    return sessions_pb2.Session(
        id=s.id,
        user_id=s.user_id,
        team_id=s.team_id,
        device=sessions_pb2.Device(browser=s.device_browser, os=s.device_os, type=s.device_type, label=s.device_label),
        ip=s.ip,
        created_at=to_timestamp(s.created_at),
        last_seen_at=to_timestamp(s.last_seen_at),
        expires_at=to_timestamp(s.expires_at),
        idle_expires_at=to_timestamp(s.idle_expires_at),
        amr=list(s.amr),
        auth_time=to_timestamp(s.auth_time),
        scope=s.scope,
        revoked=s.revoked,
    )


def _tokens(t: TokenPair) -> sessions_pb2.TokenPair:
    return sessions_pb2.TokenPair(
        access_token=t.access_token,
        refresh_token=t.refresh_token,
        expires_in=t.expires_in,
        access_expires_at=to_timestamp(t.access_expires_at),
    )


def _issued(issued: IssuedSession) -> dict[str, Any]:
    return {"session": session_message(issued.session), "tokens": _tokens(issued.tokens)}


class SessionsServicer(sessions_pb2_grpc.SessionsServiceServicer):
    def __init__(
        self, *, issuing: Issuing, refresh: Refresh, listing: Listing, revocation: Revocation, keys: SigningKeys
    ) -> None:
        self.issuing = issuing
        self.refresh = refresh
        self.listing = listing
        self.revocation = revocation
        self.keys = keys

    async def CreateSession(self, request: Any, context: Any) -> sessions_pb2.CreateSessionResponse:
        issued = await self.issuing.start(
            request.context,
            user_id=request.user_id,
            team_id=request.team_id,
            amr=list(request.amr),
            auth_time=_optional_time(request, "auth_time"),
            scope=request.scope,
            policy_idle_minutes=request.policy.idle_timeout_minutes,
            policy_absolute_hours=request.policy.absolute_timeout_hours,
        )
        return sessions_pb2.CreateSessionResponse(**_issued(issued), new_device=issued.new_device)

    async def Refresh(self, request: Any, context: Any) -> sessions_pb2.RefreshResponse:
        return sessions_pb2.RefreshResponse(
            **_issued(await self.refresh.refresh(request.context, request.refresh_token))
        )

    async def GetSession(self, request: Any, context: Any) -> sessions_pb2.GetSessionResponse:
        return sessions_pb2.GetSessionResponse(session=session_message(await self.listing.get(request.session_id)))

    async def ListSessions(self, request: Any, context: Any) -> sessions_pb2.ListSessionsResponse:
        found = await self.listing.list_sessions(request.user_id, request.team_id)
        return sessions_pb2.ListSessionsResponse(sessions=[session_message(s) for s in found])

    async def RevokeSession(self, request: Any, context: Any) -> sessions_pb2.RevokeSessionResponse:
        await self.revocation.revoke_one(request.context, request.session_id, request.user_id, request.reason)
        return sessions_pb2.RevokeSessionResponse()

    async def RevokeSessions(self, request: Any, context: Any) -> sessions_pb2.RevokeSessionsResponse:
        count = await self.revocation.revoke_many(
            request.context, request.user_id, request.team_id, request.except_session_id, request.reason
        )
        return sessions_pb2.RevokeSessionsResponse(revoked=count)

    async def SwitchTeam(self, request: Any, context: Any) -> sessions_pb2.SwitchTeamResponse:
        issued = await self.issuing.switch_team(
            request.context,
            request.session_id,
            request.team_id,
            request.policy.idle_timeout_minutes,
            request.policy.absolute_timeout_hours,
        )
        return sessions_pb2.SwitchTeamResponse(**_issued(issued))

    async def MarkReauthenticated(self, request: Any, context: Any) -> sessions_pb2.MarkReauthenticatedResponse:
        issued = await self.issuing.mark_reauthenticated(
            request.context, request.session_id, list(request.amr), _optional_time(request, "auth_time")
        )
        return sessions_pb2.MarkReauthenticatedResponse(**_issued(issued))

    async def EndEnrollmentScope(self, request: Any, context: Any) -> sessions_pb2.EndEnrollmentScopeResponse:
        updated = await self.issuing.end_enrollment_scope(request.context, request.user_id)
        return sessions_pb2.EndEnrollmentScopeResponse(updated=updated)

    async def GetJwks(self, request: Any, context: Any) -> sessions_pb2.GetJwksResponse:
        return sessions_pb2.GetJwksResponse(jwks_json=await self.keys.jwks_json())

    async def RotateSigningKey(self, request: Any, context: Any) -> sessions_pb2.RotateSigningKeyResponse:
        rotation = await self.keys.rotate(emergency=request.emergency)
        return sessions_pb2.RotateSigningKeyResponse(kid=rotation.kid, retired_kid=rotation.retired_kid)

    async def ListRecentRevocations(self, request: Any, context: Any) -> sessions_pb2.ListRecentRevocationsResponse:
        return sessions_pb2.ListRecentRevocationsResponse(session_ids=await self.revocation.recent())

    async def TouchSessions(self, request: Any, context: Any) -> sessions_pb2.TouchSessionsResponse:
        touched = await self.listing.touch(list(request.session_ids))
        return sessions_pb2.TouchSessionsResponse(touched=touched)
