import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from deelrx.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Membership(_message.Message):
    __slots__ = ("team_id", "user_id", "role", "joined_at", "permissions")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    user_id: str
    role: str
    joined_at: _timestamp_pb2.Timestamp
    permissions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, team_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[str] = ..., joined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., permissions: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("user_id", "team_id", "permission", "resource", "min_revision")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    team_id: str
    permission: str
    resource: str
    min_revision: int
    def __init__(self, user_id: _Optional[str] = ..., team_id: _Optional[str] = ..., permission: _Optional[str] = ..., resource: _Optional[str] = ..., min_revision: _Optional[int] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "reason", "revision")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    revision: int
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class BatchCheckRequest(_message.Message):
    __slots__ = ("checks",)
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[CheckRequest]
    def __init__(self, checks: _Optional[_Iterable[_Union[CheckRequest, _Mapping]]] = ...) -> None: ...

class BatchCheckResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CheckResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[CheckResponse, _Mapping]]] = ...) -> None: ...

class LookupResourcesRequest(_message.Message):
    __slots__ = ("user_id", "team_id", "permission", "resource_type", "page", "min_revision")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    team_id: str
    permission: str
    resource_type: str
    page: _common_pb2.PageRequest
    min_revision: int
    def __init__(self, user_id: _Optional[str] = ..., team_id: _Optional[str] = ..., permission: _Optional[str] = ..., resource_type: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., min_revision: _Optional[int] = ...) -> None: ...

class LookupResourcesResponse(_message.Message):
    __slots__ = ("all", "resource_ids", "revision", "page")
    ALL_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    all: bool
    resource_ids: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    page: _common_pb2.PageResponse
    def __init__(self, all: _Optional[bool] = ..., resource_ids: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class GetMembershipRequest(_message.Message):
    __slots__ = ("user_id", "team_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    team_id: str
    def __init__(self, user_id: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class GetMembershipResponse(_message.Message):
    __slots__ = ("membership", "revision")
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    membership: Membership
    revision: int
    def __init__(self, membership: _Optional[_Union[Membership, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ListMembershipsRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ListMembershipsResponse(_message.Message):
    __slots__ = ("memberships",)
    MEMBERSHIPS_FIELD_NUMBER: _ClassVar[int]
    memberships: _containers.RepeatedCompositeFieldContainer[Membership]
    def __init__(self, memberships: _Optional[_Iterable[_Union[Membership, _Mapping]]] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ("team_id",)
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    def __init__(self, team_id: _Optional[str] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[Membership]
    def __init__(self, members: _Optional[_Iterable[_Union[Membership, _Mapping]]] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("context", "team_id", "user_id", "role", "operation_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    user_id: str
    role: str
    operation_id: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[str] = ..., operation_id: _Optional[str] = ...) -> None: ...

class AddMemberResponse(_message.Message):
    __slots__ = ("membership", "created", "revision")
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    membership: Membership
    created: bool
    revision: int
    def __init__(self, membership: _Optional[_Union[Membership, _Mapping]] = ..., created: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class ChangeRoleRequest(_message.Message):
    __slots__ = ("context", "team_id", "user_id", "role", "actor_role")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    user_id: str
    role: str
    actor_role: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[str] = ..., actor_role: _Optional[str] = ...) -> None: ...

class ChangeRoleResponse(_message.Message):
    __slots__ = ("membership", "revision")
    MEMBERSHIP_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    membership: Membership
    revision: int
    def __init__(self, membership: _Optional[_Union[Membership, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("context", "team_id", "user_id", "actor_role")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    user_id: str
    actor_role: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., user_id: _Optional[str] = ..., actor_role: _Optional[str] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class TransferOwnershipRequest(_message.Message):
    __slots__ = ("context", "team_id", "from_user_id", "to_user_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_USER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_USER_ID_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    from_user_id: str
    to_user_id: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., from_user_id: _Optional[str] = ..., to_user_id: _Optional[str] = ...) -> None: ...

class TransferOwnershipResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class RolePermissions(_message.Message):
    __slots__ = ("role", "permissions")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    role: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, role: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRolesRequest(_message.Message):
    __slots__ = ("team_id",)
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    def __init__(self, team_id: _Optional[str] = ...) -> None: ...

class GetRolesResponse(_message.Message):
    __slots__ = ("roles", "configurable")
    ROLES_FIELD_NUMBER: _ClassVar[int]
    CONFIGURABLE_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.RepeatedCompositeFieldContainer[RolePermissions]
    configurable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, roles: _Optional[_Iterable[_Union[RolePermissions, _Mapping]]] = ..., configurable: _Optional[_Iterable[str]] = ...) -> None: ...

class SetRolePermissionsRequest(_message.Message):
    __slots__ = ("context", "team_id", "role", "permissions")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    role: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., role: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ...) -> None: ...

class SetRolePermissionsResponse(_message.Message):
    __slots__ = ("role", "revision")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    role: RolePermissions
    revision: int
    def __init__(self, role: _Optional[_Union[RolePermissions, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class AssignCustomerRequest(_message.Message):
    __slots__ = ("context", "team_id", "customer_id", "user_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    customer_id: str
    user_id: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class AssignCustomerResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class UnassignCustomerRequest(_message.Message):
    __slots__ = ("context", "team_id", "customer_id", "user_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    customer_id: str
    user_id: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class UnassignCustomerResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class ListAssignedCustomersRequest(_message.Message):
    __slots__ = ("team_id", "user_id")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    user_id: str
    def __init__(self, team_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class ListAssignedCustomersResponse(_message.Message):
    __slots__ = ("customer_ids",)
    CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    customer_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, customer_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CanGrantRoleRequest(_message.Message):
    __slots__ = ("user_id", "team_id", "role")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    team_id: str
    role: str
    def __init__(self, user_id: _Optional[str] = ..., team_id: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class CanGrantRoleResponse(_message.Message):
    __slots__ = ("allowed", "reason", "revision")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    revision: int
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class AuthorizationChanged(_message.Message):
    __slots__ = ("team_id", "revision", "user_id")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    revision: int
    user_id: str
    def __init__(self, team_id: _Optional[str] = ..., revision: _Optional[int] = ..., user_id: _Optional[str] = ...) -> None: ...
