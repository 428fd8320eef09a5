"""Role permission tables, customer assignments and `POST /v1/authz/check`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from deelrx.rbac.v1 import rbac_pb2
from deelrx_kit.errors import DomainError, forbidden, not_found
from gateway.auth import authenticate
from gateway.clients import call
from gateway.context import request_context
from gateway.routes.member_routes import MEMBER_NOT_FOUND, NO_CONTENT
from gateway.routes.team_routes import PROBLEMS
from gateway.state import gateway_of
from gateway.stepup import require_step_up
from gateway.team_access import require_member, require_permission
from gateway.team_schemas import AuthzCheckBody, AuthzCheckOut, CustomerIdsOut, RoleOut, RolePermissionsBody, RolesOut

router = APIRouter(tags=["roles"])


@router.get("/v1/teams/{tid}/roles", response_model=RolesOut, responses=PROBLEMS)
async def get_roles(tid: str, request: Request) -> dict[str, Any]:
    await require_member(request, tid)
    reply = await call(gateway_of(request).clients.rbac.GetRoles, rbac_pb2.GetRolesRequest(team_id=tid))
    return {"roles": {r.role: list(r.permissions) for r in reply.roles}, "configurable": list(reply.configurable)}


@router.put("/v1/teams/{tid}/roles/{role}", response_model=RoleOut, responses=PROBLEMS)
async def set_role_permissions(tid: str, role: str, body: RolePermissionsBody, request: Request) -> dict[str, Any]:
    access = await require_permission(request, tid, "roles.manage")
    await require_step_up(request, access.auth)
    if role == "owner":
        raise forbidden("The owner role always holds every permission")
    if role not in ("manager", "staff"):
        raise not_found("No such role")
    reply = await call(
        gateway_of(request).clients.rbac.SetRolePermissions,
        rbac_pb2.SetRolePermissionsRequest(
            context=request_context(request), team_id=tid, role=role, permissions=body.permissions
        ),
    )
    return {"role": reply.role.role, "permissions": list(reply.role.permissions)}


async def _assignment(tid: str, cid: str, uid: str, request: Request, *, assign: bool) -> Response:
    await require_permission(request, tid, "customers.assign")
    rbac = gateway_of(request).clients.rbac
    context = request_context(request)
    try:
        if assign:
            await call(
                rbac.AssignCustomer,
                rbac_pb2.AssignCustomerRequest(context=context, team_id=tid, customer_id=cid, user_id=uid),
            )
        else:
            await call(
                rbac.UnassignCustomer,
                rbac_pb2.UnassignCustomerRequest(context=context, team_id=tid, customer_id=cid, user_id=uid),
            )
    except DomainError as exc:
        if exc.code == "validation_error" and any(v.pointer == "/user_id" for v in exc.violations):
            raise not_found(MEMBER_NOT_FOUND) from None
        raise
    return Response(status_code=204)


@router.put(
    "/v1/teams/{tid}/customers/{cid}/assignees/{uid}", status_code=204, response_class=Response, responses=NO_CONTENT
)
async def assign_customer(tid: str, cid: str, uid: str, request: Request) -> Response:
    return await _assignment(tid, cid, uid, request, assign=True)


@router.delete(
    "/v1/teams/{tid}/customers/{cid}/assignees/{uid}", status_code=204, response_class=Response, responses=NO_CONTENT
)
async def unassign_customer(tid: str, cid: str, uid: str, request: Request) -> Response:
    return await _assignment(tid, cid, uid, request, assign=False)


@router.get("/v1/teams/{tid}/members/{uid}/customers", response_model=CustomerIdsOut, responses=PROBLEMS)
async def assigned_customers(tid: str, uid: str, request: Request) -> dict[str, Any]:
    auth = await authenticate(request)
    if uid == auth.user_id:
        await require_member(request, tid)
    else:
        await require_permission(request, tid, "customers.assign")
    gw = gateway_of(request)
    try:
        await call(gw.clients.rbac.GetMembership, rbac_pb2.GetMembershipRequest(user_id=uid, team_id=tid))
    except DomainError as exc:
        if exc.code in ("not_found", "validation_error"):
            raise not_found(MEMBER_NOT_FOUND) from None
        raise
    reply = await call(
        gw.clients.rbac.ListAssignedCustomers, rbac_pb2.ListAssignedCustomersRequest(team_id=tid, user_id=uid)
    )
    return {"customer_ids": list(reply.customer_ids)}


@router.post("/v1/authz/check", response_model=AuthzCheckOut, responses=PROBLEMS)
async def check(body: AuthzCheckBody, request: Request) -> dict[str, Any]:
    """May the caller do `permission` (on `resource`) in their active team?"""
    auth = await authenticate(request)
    if not auth.team_id:
        return {"allowed": False, "reason": "no active team", "revision": 0}
    reply = await call(
        gateway_of(request).clients.rbac.Check,
        rbac_pb2.CheckRequest(
            user_id=auth.user_id, team_id=auth.team_id, permission=body.permission, resource=body.resource or ""
        ),
    )
    return {"allowed": reply.allowed, "reason": reply.reason, "revision": reply.revision}
