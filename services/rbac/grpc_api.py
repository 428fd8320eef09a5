"""RbacService servicer: protobuf in, use case, protobuf out."""

from __future__ import annotations

from typing import Any

from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx_kit.timestamps import to_timestamp
from services.rbac.assignments import Assignments
from services.rbac.checks import CheckQuery, Checks
from services.rbac.memberships import Memberships, MembershipView
from services.rbac.roles import Roles


def _membership(view: MembershipView) -> rbac_pb2.Membership:
    b = view.binding
    return rbac_pb2.Membership(
        team_id=b.team_id,
        user_id=b.user_id,
        role=b.role,
        joined_at=to_timestamp(b.joined_at),
        permissions=view.permissions,
    )


def _query(req: rbac_pb2.CheckRequest) -> CheckQuery:
    return CheckQuery(req.user_id, req.team_id, req.permission, req.resource, req.min_revision)


def _context(req: Any) -> Any:
    return req.context if req.HasField("context") else None


class RbacServicer(rbac_pb2_grpc.RbacServiceServicer):
    def __init__(self, *, checks: Checks, memberships: Memberships, roles: Roles, assignments: Assignments) -> None:
        self.checks = checks
        self.memberships = memberships
        self.roles = roles
        self.assignments = assignments

    async def Check(self, request: rbac_pb2.CheckRequest, context: Any) -> rbac_pb2.CheckResponse:
        decision, revision = await self.checks.check(_query(request))
        return rbac_pb2.CheckResponse(allowed=decision.allowed, reason=decision.reason, revision=revision)

    async def BatchCheck(self, request: rbac_pb2.BatchCheckRequest, context: Any) -> rbac_pb2.BatchCheckResponse:
        answers = await self.checks.batch_check([_query(c) for c in request.checks])
        return rbac_pb2.BatchCheckResponse(
            results=[rbac_pb2.CheckResponse(allowed=d.allowed, reason=d.reason, revision=r) for d, r in answers]
        )

    async def LookupResources(
        self, request: rbac_pb2.LookupResourcesRequest, context: Any
    ) -> rbac_pb2.LookupResourcesResponse:
        found, revision, next_cursor = await self.checks.lookup_resources(
            request.user_id,
            request.team_id,
            request.permission,
            request.resource_type,
            limit=request.page.limit,
            cursor=request.page.cursor,
            min_revision=request.min_revision,
        )
        response = rbac_pb2.LookupResourcesResponse(all=found.all, resource_ids=found.resource_ids, revision=revision)
        response.page.next_cursor = next_cursor
        return response

    async def CanGrantRole(self, request: rbac_pb2.CanGrantRoleRequest, context: Any) -> rbac_pb2.CanGrantRoleResponse:
        decision, revision = await self.checks.can_grant_role(request.user_id, request.team_id, request.role)
        return rbac_pb2.CanGrantRoleResponse(allowed=decision.allowed, reason=decision.reason, revision=revision)

    async def GetMembership(
        self, request: rbac_pb2.GetMembershipRequest, context: Any
    ) -> rbac_pb2.GetMembershipResponse:
        view, revision = await self.memberships.get(request.user_id, request.team_id)
        return rbac_pb2.GetMembershipResponse(membership=_membership(view), revision=revision)

    async def ListMemberships(
        self, request: rbac_pb2.ListMembershipsRequest, context: Any
    ) -> rbac_pb2.ListMembershipsResponse:
        views = await self.memberships.of_user(request.user_id)
        return rbac_pb2.ListMembershipsResponse(memberships=[_membership(v) for v in views])

    async def ListMembers(self, request: rbac_pb2.ListMembersRequest, context: Any) -> rbac_pb2.ListMembersResponse:
        views = await self.memberships.of_team(request.team_id)
        return rbac_pb2.ListMembersResponse(members=[_membership(v) for v in views])

    async def AddMember(self, request: rbac_pb2.AddMemberRequest, context: Any) -> rbac_pb2.AddMemberResponse:
        view, created, revision = await self.memberships.add(
            _context(request), request.team_id, request.user_id, request.role, request.operation_id
        )
        return rbac_pb2.AddMemberResponse(membership=_membership(view), created=created, revision=revision)

    async def ChangeRole(self, request: rbac_pb2.ChangeRoleRequest, context: Any) -> rbac_pb2.ChangeRoleResponse:
        view, revision = await self.memberships.change_role(
            _context(request), request.team_id, request.user_id, request.role, request.actor_role
        )
        return rbac_pb2.ChangeRoleResponse(membership=_membership(view), revision=revision)

    async def RemoveMember(self, request: rbac_pb2.RemoveMemberRequest, context: Any) -> rbac_pb2.RemoveMemberResponse:
        revision = await self.memberships.remove(
            _context(request), request.team_id, request.user_id, request.actor_role
        )
        return rbac_pb2.RemoveMemberResponse(revision=revision)

    async def TransferOwnership(
        self, request: rbac_pb2.TransferOwnershipRequest, context: Any
    ) -> rbac_pb2.TransferOwnershipResponse:
        revision = await self.memberships.transfer_ownership(
            _context(request), request.team_id, request.from_user_id, request.to_user_id
        )
        return rbac_pb2.TransferOwnershipResponse(revision=revision)

    async def GetRoles(self, request: rbac_pb2.GetRolesRequest, context: Any) -> rbac_pb2.GetRolesResponse:
        roles, configurable = await self.roles.table(request.team_id)
        return rbac_pb2.GetRolesResponse(
            roles=[rbac_pb2.RolePermissions(role=r, permissions=p) for r, p in roles.items()],
            configurable=configurable,
        )

    async def SetRolePermissions(
        self, request: rbac_pb2.SetRolePermissionsRequest, context: Any
    ) -> rbac_pb2.SetRolePermissionsResponse:
        permissions, revision = await self.roles.set_permissions(
            _context(request), request.team_id, request.role, list(request.permissions)
        )
        return rbac_pb2.SetRolePermissionsResponse(
            role=rbac_pb2.RolePermissions(role=request.role, permissions=permissions), revision=revision
        )

    async def AssignCustomer(
        self, request: rbac_pb2.AssignCustomerRequest, context: Any
    ) -> rbac_pb2.AssignCustomerResponse:
        revision = await self.assignments.assign(
            _context(request), request.team_id, request.customer_id, request.user_id
        )
        return rbac_pb2.AssignCustomerResponse(revision=revision)

    async def UnassignCustomer(
        self, request: rbac_pb2.UnassignCustomerRequest, context: Any
    ) -> rbac_pb2.UnassignCustomerResponse:
        revision = await self.assignments.unassign(
            _context(request), request.team_id, request.customer_id, request.user_id
        )
        return rbac_pb2.UnassignCustomerResponse(revision=revision)

    async def ListAssignedCustomers(
        self, request: rbac_pb2.ListAssignedCustomersRequest, context: Any
    ) -> rbac_pb2.ListAssignedCustomersResponse:
        ids = await self.assignments.of_member(request.team_id, request.user_id)
        return rbac_pb2.ListAssignedCustomersResponse(customer_ids=ids)
