"""Live authorization of `/v1/teams/{tid}/...` paths against the path's team, through rbac.

A team the caller is not a member of answers 404 `not_found`, exactly like a team that does
not exist: both are decided by the same rbac call, whose snapshot of an unknown team is empty.
Denials (403, and the 404 of a non-member) emit `authz.denied`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.errors import DomainError, forbidden, not_found
from deelrx_kit.ids import has_prefix
from gateway.auth import AuthContext, authenticate
from gateway.clients import call
from gateway.state import gateway_of

NOT_A_MEMBER = "not a member"
TEAM_NOT_FOUND = "Team not found"


@dataclass(frozen=True)
class TeamAccess:
    auth: AuthContext
    team_id: str
    reason: str
    revision: int

    @property
    def user_id(self) -> str:
        return self.auth.user_id


def _missing_team() -> DomainError:
    return not_found(TEAM_NOT_FOUND)


async def require_permission(request: Request, team_id: str, permission: str, resource: str = "") -> TeamAccess:
    """The caller must hold `permission` (on `resource`) in `team_id`, decided live by rbac."""
    auth = await authenticate(request)
    if not has_prefix(team_id, "tm"):
        raise _missing_team()
    gw = gateway_of(request)
    answer = await call(
        gw.clients.rbac.Check,
        rbac_pb2.CheckRequest(user_id=auth.user_id, team_id=team_id, permission=permission, resource=resource),
    )
    if answer.allowed:
        return TeamAccess(auth, team_id, answer.reason, answer.revision)
    member = answer.reason != NOT_A_MEMBER
    gw.denials.record(
        request, team_id=team_id, permission=permission, reason=answer.reason, resource=resource, member=member
    )
    if not member:
        raise _missing_team()
    raise forbidden(f"You lack the permission {permission} in this team")


async def require_member(request: Request, team_id: str) -> tuple[TeamAccess, rbac_pb2.Membership]:
    """Any role in `team_id`; returns the caller's membership."""
    auth = await authenticate(request)
    if not has_prefix(team_id, "tm"):
        raise _missing_team()
    gw = gateway_of(request)
    try:
        reply = await call(
            gw.clients.rbac.GetMembership, rbac_pb2.GetMembershipRequest(user_id=auth.user_id, team_id=team_id)
        )
    except DomainError as exc:
        if exc.code == "not_found":
            gw.denials.record(request, team_id=team_id, permission="member", reason=NOT_A_MEMBER, member=False)
            raise _missing_team() from None
        raise
    return TeamAccess(auth, team_id, f"member as {reply.membership.role}", reply.revision), reply.membership


async def require_owner(request: Request, team_id: str) -> TeamAccess:
    access, membership = await require_member(request, team_id)
    if membership.role != "owner":
        gateway_of(request).denials.record(
            request, team_id=team_id, permission="owner", reason=f"role {membership.role} is not owner"
        )
        raise forbidden("Only an owner may do this")
    return access
