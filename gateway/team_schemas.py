"""Bodies of the team, member, invitation, billing, role and authorization endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from deelrx_kit.plans import Plan
from gateway.schemas import Body

Role = Literal["owner", "manager", "staff"]


class TeamCreateBody(Body):
    name: str = Field(min_length=1, max_length=100)


class TeamSettingsBody(Body):
    session_idle_timeout_minutes: int | None = Field(default=None, ge=5, le=30)
    session_absolute_timeout_hours: int | None = Field(default=None, ge=1, le=12)
    mfa_required: bool | None = None


class TeamPatchBody(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    settings: TeamSettingsBody | None = None


class RoleBody(Body):
    role: Role


class InvitationBody(Body):
    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    role: Role


class AcceptBody(Body):
    token: str = Field(min_length=1, max_length=512)


class BillingBody(Body):
    plan: Plan
    billing_email: str | None = Field(default=None, max_length=320)


class TransferBody(Body):
    user_id: str = Field(min_length=1, max_length=64)


class RolePermissionsBody(Body):
    permissions: list[str] = Field(max_length=64)


class AuthzCheckBody(Body):
    permission: str = Field(min_length=1, max_length=64)
    resource: str | None = Field(default=None, max_length=200)


class SwitchTeamBody(Body):
    team_id: str = Field(min_length=1, max_length=64)


class TeamSettingsOut(BaseModel):
    session_idle_timeout_minutes: int
    session_absolute_timeout_hours: int
    mfa_required: bool


class TeamDetailOut(BaseModel):
    id: str
    name: str
    plan: str
    settings: TeamSettingsOut


class TeamSummaryOut(BaseModel):
    id: str
    name: str
    plan: str
    role: str


class TeamListOut(BaseModel):
    teams: list[TeamSummaryOut]


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str
    role: str
    joined_at: str | None
    mfa_enabled: bool


class MemberListOut(BaseModel):
    members: list[MemberOut]


class InvitationOut(BaseModel):
    id: str
    email: str
    role: str
    expires_at: str | None
    invited_by: str | None = None
    created_at: str | None = None


class InvitationListOut(BaseModel):
    invitations: list[InvitationOut]
    next_cursor: str | None


class AcceptedOut(BaseModel):
    team_id: str
    role: str


class BillingOut(BaseModel):
    plan: str
    billing_email: str | None


class RolesOut(BaseModel):
    roles: dict[str, list[str]]
    configurable: list[str]


class RoleOut(BaseModel):
    role: str
    permissions: list[str]


class AuthzCheckOut(BaseModel):
    allowed: bool
    reason: str
    revision: int


class CustomerIdsOut(BaseModel):
    customer_ids: list[str]


class TransferOut(BaseModel):
    owner_user_id: str
    former_owner_role: Literal["manager"] = "manager"
