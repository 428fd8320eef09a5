"""Members of a team, their sessions, invitations, and accepting an invitation."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.errors import DomainError, forbidden, not_found
from gateway.auth import authenticate
from gateway.clients import call
from gateway.context import request_context
from gateway.presenters import time_of
from gateway.routes.session_routes import RevokedCount, SessionList, listed_session_json
from gateway.routes.team_routes import PROBLEMS
from gateway.state import Gateway, gateway_of
from gateway.stepup import require_step_up
from gateway.team_access import require_permission
from gateway.team_schemas import (
    AcceptBody,
    AcceptedOut,
    InvitationBody,
    InvitationListOut,
    InvitationOut,
    MemberListOut,
    MemberOut,
    RoleBody,
)

router = APIRouter(tags=["members"])
NO_CONTENT = {204: {"description": "Done"}, **PROBLEMS}
MEMBER_NOT_FOUND = "Member not found"


async def _users(gw: Gateway, user_ids: list[str]) -> dict[str, identity_pb2.User]:
    replies = await asyncio.gather(
        *(call(gw.clients.identity.GetUser, identity_pb2.GetUserRequest(user_id=u)) for u in user_ids),
        return_exceptions=True,
    )
    found: dict[str, identity_pb2.User] = {}
    for reply in replies:
        if isinstance(reply, DomainError):
            if reply.code != "not_found":
                raise reply
            continue
        if isinstance(reply, BaseException):
            raise reply
        found[reply.user.id] = reply.user
    return found


def member_json(m: rbac_pb2.Membership, user: identity_pb2.User | None) -> dict[str, Any]:
    return {
        "user_id": m.user_id,
        "email": user.email if user else "",
        "name": user.name if user else "",
        "role": m.role,
        "joined_at": time_of(m.joined_at),
        "mfa_enabled": bool(user and user.mfa_enabled),
    }


async def _membership_of(gw: Gateway, team_id: str, user_id: str) -> rbac_pb2.Membership:
    try:
        reply: rbac_pb2.GetMembershipResponse = await call(
            gw.clients.rbac.GetMembership, rbac_pb2.GetMembershipRequest(user_id=user_id, team_id=team_id)
        )
    except DomainError as exc:
        if exc.code in ("not_found", "validation_error"):
            raise not_found(MEMBER_NOT_FOUND) from None
        raise
    return reply.membership


@router.get("/v1/teams/{tid}/members", response_model=MemberListOut, responses=PROBLEMS)
async def list_members(tid: str, request: Request) -> dict[str, Any]:
    await require_permission(request, tid, "members.read")
    gw = gateway_of(request)
    members = (await call(gw.clients.rbac.ListMembers, rbac_pb2.ListMembersRequest(team_id=tid))).members
    users = await _users(gw, [m.user_id for m in members])
    return {"members": [member_json(m, users.get(m.user_id)) for m in members]}


@router.patch("/v1/teams/{tid}/members/{uid}", response_model=MemberOut, responses=PROBLEMS)
async def change_role(tid: str, uid: str, body: RoleBody, request: Request) -> dict[str, Any]:
    await require_permission(request, tid, "members.manage")
    gw = gateway_of(request)
    await _membership_of(gw, tid, uid)
    # rbac applies the role rules against the actor's stored role, under the team's lock:
    # only an owner grants or takes owner; the last owner is never demoted.
    reply = await call(
        gw.clients.rbac.ChangeRole,
        rbac_pb2.ChangeRoleRequest(context=request_context(request), team_id=tid, user_id=uid, role=body.role),
    )
    users = await _users(gw, [uid])
    return member_json(reply.membership, users.get(uid))


@router.delete("/v1/teams/{tid}/members/{uid}", status_code=204, response_class=Response, responses=NO_CONTENT)
async def remove_member(tid: str, uid: str, request: Request) -> Response:
    await require_permission(request, tid, "members.manage")
    gw = gateway_of(request)
    context = request_context(request)
    try:
        await call(
            gw.clients.rbac.RemoveMember, rbac_pb2.RemoveMemberRequest(context=context, team_id=tid, user_id=uid)
        )
    except DomainError as exc:
        if exc.code not in ("not_found", "validation_error"):
            raise
        # Not (or no longer) a member: a retry after a failure between the two steps still
        # revokes what the removal left behind, then answers 404.
        if exc.code == "not_found":
            await _revoke_team_sessions(gw, context, tid, uid, "member_removed")
        raise not_found(MEMBER_NOT_FOUND) from None
    await _revoke_team_sessions(gw, context, tid, uid, "member_removed")
    return Response(status_code=204)


async def _revoke_team_sessions(gw: Gateway, context: Any, tid: str, uid: str, reason: str) -> int:
    reply = await call(
        gw.clients.sessions.RevokeSessions,
        sessions_pb2.RevokeSessionsRequest(context=context, user_id=uid, team_id=tid, reason=reason),
    )
    return int(reply.revoked)


@router.get("/v1/teams/{tid}/members/{uid}/sessions", response_model=SessionList, responses=PROBLEMS)
async def member_sessions(tid: str, uid: str, request: Request) -> dict[str, Any]:
    access = await require_permission(request, tid, "sessions.manage")
    gw = gateway_of(request)
    await _membership_of(gw, tid, uid)
    reply = await call(gw.clients.sessions.ListSessions, sessions_pb2.ListSessionsRequest(user_id=uid, team_id=tid))
    return {"sessions": [listed_session_json(s, access.auth.session_id) for s in reply.sessions if not s.revoked]}


@router.delete("/v1/teams/{tid}/members/{uid}/sessions", response_model=RevokedCount, responses=PROBLEMS)
async def revoke_member_sessions(tid: str, uid: str, request: Request) -> dict[str, int]:
    access = await require_permission(request, tid, "sessions.manage")
    if uid != access.user_id:
        await require_step_up(request, access.auth)  # revoking another member's sessions
    gw = gateway_of(request)
    await _membership_of(gw, tid, uid)
    revoked = await _revoke_team_sessions(gw, request_context(request), tid, uid, "revoked_by_team_admin")
    return {"revoked": revoked}


# -- invitations ------------------------------------------------------------------------------
def invitation_json(i: identity_pb2.Invitation) -> dict[str, Any]:
    return {
        "id": i.id,
        "email": i.email,
        "role": i.role,
        "expires_at": time_of(i.expires_at),
        "invited_by": i.invited_by or None,
        "created_at": time_of(i.created_at),
    }


@router.post("/v1/teams/{tid}/invitations", status_code=201, response_model=InvitationOut, responses=PROBLEMS)
async def invite(tid: str, body: InvitationBody, request: Request) -> dict[str, Any]:
    access = await require_permission(request, tid, "members.invite")
    gw = gateway_of(request)
    grant = await call(
        gw.clients.rbac.CanGrantRole,
        rbac_pb2.CanGrantRoleRequest(user_id=access.user_id, team_id=tid, role=body.role),
    )
    if not grant.allowed:
        gw.denials.record(request, team_id=tid, permission=f"grant:{body.role}", reason=grant.reason)
        raise forbidden(f"You may not invite to the role {body.role}: {grant.reason}")
    reply = await call(
        gw.clients.identity.CreateInvitation,
        identity_pb2.CreateInvitationRequest(
            context=request_context(request), team_id=tid, email=body.email, role=body.role
        ),
    )
    return invitation_json(reply.invitation)


@router.get("/v1/teams/{tid}/invitations", response_model=InvitationListOut, responses=PROBLEMS)
async def list_invitations(
    tid: str,
    request: Request,
    limit: int = Query(default=50, ge=1, le=200),
    cursor: str | None = Query(default=None, max_length=64),
) -> dict[str, Any]:
    await require_permission(request, tid, "members.invite")
    gw = gateway_of(request)
    reply = await call(
        gw.clients.identity.ListInvitations,
        identity_pb2.ListInvitationsRequest(team_id=tid, page={"limit": limit, "cursor": cursor or ""}),
    )
    return {
        "invitations": [invitation_json(i) for i in reply.invitations],
        "next_cursor": reply.page.next_cursor or None,
    }


@router.delete("/v1/teams/{tid}/invitations/{iid}", status_code=204, response_class=Response, responses=NO_CONTENT)
async def revoke_invitation(tid: str, iid: str, request: Request) -> Response:
    await require_permission(request, tid, "members.invite")
    gw = gateway_of(request)
    await call(
        gw.clients.identity.RevokeInvitation,
        identity_pb2.RevokeInvitationRequest(context=request_context(request), team_id=tid, invitation_id=iid),
    )
    return Response(status_code=204)


@router.post("/v1/invitations/accept", response_model=AcceptedOut, responses=PROBLEMS)
async def accept_invitation(body: AcceptBody, request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    gw = gateway_of(request)
    context = request_context(request)
    accepted = await call(
        gw.clients.identity.AcceptInvitation,
        identity_pb2.AcceptInvitationRequest(context=context, user_id=auth.user_id, token=body.token),
    )
    # Keyed by the invitation id: a retry (same user, same token) after a failure here finishes
    # the job; the membership is never added twice.
    try:
        added = await call(
            gw.clients.rbac.AddMember,
            rbac_pb2.AddMemberRequest(
                context=context,
                team_id=accepted.team_id,
                user_id=auth.user_id,
                role=accepted.role,
                operation_id=accepted.invitation_id,
            ),
        )
    except DomainError as exc:
        if exc.code == "conflict":
            raise DomainError("conflict", "You are already a member of this team") from None
        raise
    if not added.created:
        # A replay: fine while the membership it made still exists; after a removal the used
        # invitation does not bring the member back.
        try:
            await call(
                gw.clients.rbac.GetMembership,
                rbac_pb2.GetMembershipRequest(user_id=auth.user_id, team_id=accepted.team_id),
            )
        except DomainError as exc:
            if exc.code == "not_found":
                raise DomainError("invalid_token", "This invitation was already used") from None
            raise
    return {"team_id": accepted.team_id, "role": accepted.role}
