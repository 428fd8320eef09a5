"""/v1/teams: create, list, read and update teams; billing; ownership transfer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.errors import not_found
from gateway.auth import authenticate
from gateway.clients import call
from gateway.context import request_context
from gateway.mfa_policy import check_can_require_mfa
from gateway.state import Gateway, gateway_of
from gateway.stepup import require_step_up
from gateway.team_access import TEAM_NOT_FOUND, require_member, require_owner, require_permission
from gateway.team_schemas import (
    BillingBody,
    BillingOut,
    TeamCreateBody,
    TeamDetailOut,
    TeamListOut,
    TeamPatchBody,
    TeamSummaryOut,
    TransferBody,
    TransferOut,
)

router = APIRouter(prefix="/v1/teams", tags=["teams"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"content": {"application/problem+json": {}}, "description": desc}
    for code, desc in {
        401: "unauthenticated / session_expired / reauthentication_required",
        403: "forbidden / csrf_failed",
        404: "not_found (also for a team the caller is not a member of)",
        409: "conflict",
        422: "validation_error",
        429: "rate_limited",
        503: "unavailable",
    }.items()
}


def team_json(team: identity_pb2.Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "plan": team.plan,
        "settings": {
            "session_idle_timeout_minutes": team.settings.session_idle_timeout_minutes,
            "session_absolute_timeout_hours": team.settings.session_absolute_timeout_hours,
            "mfa_required": team.settings.mfa_required,
        },
    }


async def load_team(gw: Gateway, team_id: str) -> identity_pb2.Team:
    reply: identity_pb2.GetTeamsResponse = await call(
        gw.clients.identity.GetTeams, identity_pb2.GetTeamsRequest(team_ids=[team_id])
    )
    if not reply.teams:
        raise not_found(TEAM_NOT_FOUND)
    team: identity_pb2.Team = reply.teams[0]
    return team


@router.post("", status_code=201, response_model=TeamSummaryOut, responses=PROBLEMS)
async def create_team(body: TeamCreateBody, request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    gw = gateway_of(request)
    context = request_context(request)
    created = await call(
        gw.clients.identity.CreateTeam,
        identity_pb2.CreateTeamRequest(context=context, owner_user_id=auth.user_id, name=body.name),
    )
    team = created.team
    # The team id is the operation id: a retried membership step never double-applies.
    await call(
        gw.clients.rbac.AddMember,
        rbac_pb2.AddMemberRequest(
            context=context, team_id=team.id, user_id=auth.user_id, role="owner", operation_id=team.id
        ),
    )
    return {"id": team.id, "name": team.name, "plan": team.plan, "role": "owner"}


@router.get("", response_model=TeamListOut, responses=PROBLEMS)
async def list_teams(request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    gw = gateway_of(request)
    memberships = await call(gw.clients.rbac.ListMemberships, rbac_pb2.ListMembershipsRequest(user_id=auth.user_id))
    roles = {m.team_id: m.role for m in memberships.memberships}
    if not roles:
        return {"teams": []}
    found = await call(gw.clients.identity.GetTeams, identity_pb2.GetTeamsRequest(team_ids=list(roles)))
    return {"teams": [{"id": t.id, "name": t.name, "plan": t.plan, "role": roles[t.id]} for t in found.teams]}


@router.get("/{tid}", response_model=TeamDetailOut, responses=PROBLEMS)
async def get_team(tid: str, request: Request) -> dict[str, Any]:
    await require_member(request, tid)
    return team_json(await load_team(gateway_of(request), tid))


@router.patch("/{tid}", response_model=TeamDetailOut, responses=PROBLEMS)
async def update_team(tid: str, body: TeamPatchBody, request: Request) -> dict[str, Any]:
    access = await require_permission(request, tid, "team.manage")
    gw = gateway_of(request)
    if body.settings is not None and body.settings.mfa_required:
        actor = await call(gw.clients.identity.GetUser, identity_pb2.GetUserRequest(user_id=access.user_id))
        check_can_require_mfa(actor.user, turning_on=True)  # never locks its own author out
    update = identity_pb2.UpdateTeamRequest(context=request_context(request), team_id=tid)
    if body.name is not None:
        update.name = body.name
    if body.settings is not None:
        s = body.settings
        if s.session_idle_timeout_minutes is not None:
            update.session_idle_timeout_minutes = s.session_idle_timeout_minutes
        if s.session_absolute_timeout_hours is not None:
            update.session_absolute_timeout_hours = s.session_absolute_timeout_hours
        if s.mfa_required is not None:
            update.mfa_required = s.mfa_required
    reply = await call(gw.clients.identity.UpdateTeam, update)
    return team_json(reply.team)


@router.get("/{tid}/billing", response_model=BillingOut, responses=PROBLEMS)
async def get_billing(tid: str, request: Request) -> dict[str, Any]:
    await require_permission(request, tid, "billing.read")
    team = await load_team(gateway_of(request), tid)
    return {"plan": team.plan, "billing_email": team.billing_email or None}


@router.put("/{tid}/billing", response_model=BillingOut, responses=PROBLEMS)
async def update_billing(tid: str, body: BillingBody, request: Request) -> dict[str, Any]:
    access = await require_permission(request, tid, "billing.manage")
    await require_step_up(request, access.auth)
    gw = gateway_of(request)
    update = identity_pb2.UpdateBillingRequest(context=request_context(request), team_id=tid, plan=body.plan)
    if body.billing_email is not None:
        update.billing_email = body.billing_email
    reply = await call(gw.clients.identity.UpdateBilling, update)
    # This replica applies the new plan at once; the others on identity's `teams.changed`.
    gw.plans.invalidate(tid)
    return {"plan": reply.team.plan, "billing_email": reply.team.billing_email or None}


@router.post("/{tid}/transfer-ownership", response_model=TransferOut, responses=PROBLEMS)
async def transfer_ownership(tid: str, body: TransferBody, request: Request) -> dict[str, Any]:
    access = await require_owner(request, tid)
    await require_step_up(request, access.auth)
    gw = gateway_of(request)
    await call(
        gw.clients.rbac.TransferOwnership,
        rbac_pb2.TransferOwnershipRequest(
            context=request_context(request), team_id=tid, from_user_id=access.user_id, to_user_id=body.user_id
        ),
    )
    return {"owner_user_id": body.user_id, "former_owner_role": "manager"}
