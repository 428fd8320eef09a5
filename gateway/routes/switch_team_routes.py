"""POST /v1/auth/switch-team: new tokens bound to another team the caller belongs to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from deelrx.identity.v1 import identity_pb2
from deelrx.sessions.v1 import sessions_pb2
from gateway.auth import IssuedTokens, queue_cookies
from gateway.clients import call
from gateway.context import request_context
from gateway.exchange import exchange_of
from gateway.presenters import session_json
from gateway.routes.team_routes import PROBLEMS
from gateway.state import gateway_of
from gateway.team_access import require_member
from gateway.team_schemas import SwitchTeamBody

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/switch-team", responses=PROBLEMS)
async def switch_team(body: SwitchTeamBody, request: Request) -> dict[str, Any]:
    """Membership is checked live through rbac; a team the caller is not in answers 404 like a
    missing one. What the session may do in the new team is identity's decision (GrantForTeam:
    403 `mfa_enrollment_required` while the team requires TOTP the caller lacks, else its
    timeouts), passed on to sessions as a login's grant is (never extended: sessions keeps the
    earlier absolute expiry). Delivery mirrors the request: cookies in, cookies out."""
    access, membership = await require_member(request, body.team_id)
    gw = gateway_of(request)
    granted = await call(
        gw.clients.identity.GrantForTeam,
        identity_pb2.GrantForTeamRequest(user_id=access.user_id, team_id=body.team_id),
    )
    team, grant = granted.team, granted.session_grant
    reply = await call(
        gw.clients.sessions.SwitchTeam,
        sessions_pb2.SwitchTeamRequest(
            context=request_context(request),
            session_id=access.auth.session_id,
            team_id=team.id,
            policy=sessions_pb2.SessionPolicy(
                idle_timeout_minutes=grant.idle_timeout_minutes,
                absolute_timeout_hours=grant.absolute_timeout_hours,
            ),
        ),
    )
    await call(
        gw.clients.identity.SetActiveTeam, identity_pb2.SetActiveTeamRequest(user_id=access.user_id, team_id=team.id)
    )
    exchange_of(request).forbid_caching()
    tokens = IssuedTokens(reply.tokens.access_token, reply.tokens.refresh_token, reply.tokens.expires_in, reply.session)
    answer: dict[str, Any] = {
        "session": session_json(reply.session),
        "team": {"id": team.id, "name": team.name, "plan": team.plan, "role": membership.role},
    }
    if access.auth.via == "bearer":
        answer.update(
            {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "token_type": "Bearer",
                "expires_in": tokens.expires_in,
            }
        )
    else:
        queue_cookies(request, tokens)
    return answer
