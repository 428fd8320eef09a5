import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from deelrx.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class User(_message.Message):
    __slots__ = ("id", "email", "name", "email_verified", "mfa_enabled", "last_active_team_id", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    MFA_ENABLED_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    name: str
    email_verified: bool
    mfa_enabled: bool
    last_active_team_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ..., name: _Optional[str] = ..., email_verified: _Optional[bool] = ..., mfa_enabled: _Optional[bool] = ..., last_active_team_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TeamSettings(_message.Message):
    __slots__ = ("session_idle_timeout_minutes", "session_absolute_timeout_hours", "mfa_required")
    SESSION_IDLE_TIMEOUT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ABSOLUTE_TIMEOUT_HOURS_FIELD_NUMBER: _ClassVar[int]
    MFA_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    session_idle_timeout_minutes: int
    session_absolute_timeout_hours: int
    mfa_required: bool
    def __init__(self, session_idle_timeout_minutes: _Optional[int] = ..., session_absolute_timeout_hours: _Optional[int] = ..., mfa_required: _Optional[bool] = ...) -> None: ...

class Team(_message.Message):
    __slots__ = ("id", "name", "plan", "settings", "billing_email", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    BILLING_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    plan: str
    settings: TeamSettings
    billing_email: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., plan: _Optional[str] = ..., settings: _Optional[_Union[TeamSettings, _Mapping]] = ..., billing_email: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Invitation(_message.Message):
    __slots__ = ("id", "team_id", "email", "role", "expires_at", "invited_by", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    INVITED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    team_id: str
    email: str
    role: str
    expires_at: _timestamp_pb2.Timestamp
    invited_by: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., team_id: _Optional[str] = ..., email: _Optional[str] = ..., role: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., invited_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartSignupRequest(_message.Message):
    __slots__ = ("context", "email", "password", "name")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    email: str
    password: str
    name: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., email: _Optional[str] = ..., password: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class StartSignupResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyEmailRequest(_message.Message):
    __slots__ = ("context", "token", "password")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    token: str
    password: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., token: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class VerifyEmailResponse(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ResendVerificationRequest(_message.Message):
    __slots__ = ("context", "email")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    email: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., email: _Optional[str] = ...) -> None: ...

class ResendVerificationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("context", "email", "password", "token_delivery", "device_token")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    email: str
    password: str
    token_delivery: str
    device_token: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., email: _Optional[str] = ..., password: _Optional[str] = ..., token_delivery: _Optional[str] = ..., device_token: _Optional[str] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("user", "mfa_required", "mfa_token", "amr", "auth_time", "active_team", "device_token", "session_grant")
    USER_FIELD_NUMBER: _ClassVar[int]
    MFA_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MFA_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AMR_FIELD_NUMBER: _ClassVar[int]
    AUTH_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TEAM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_GRANT_FIELD_NUMBER: _ClassVar[int]
    user: User
    mfa_required: bool
    mfa_token: str
    amr: _containers.RepeatedScalarFieldContainer[str]
    auth_time: _timestamp_pb2.Timestamp
    active_team: Team
    device_token: str
    session_grant: SessionGrant
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., mfa_required: _Optional[bool] = ..., mfa_token: _Optional[str] = ..., amr: _Optional[_Iterable[str]] = ..., auth_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active_team: _Optional[_Union[Team, _Mapping]] = ..., device_token: _Optional[str] = ..., session_grant: _Optional[_Union[SessionGrant, _Mapping]] = ...) -> None: ...

class SessionGrant(_message.Message):
    __slots__ = ("scope", "idle_timeout_minutes", "absolute_timeout_hours")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ABSOLUTE_TIMEOUT_HOURS_FIELD_NUMBER: _ClassVar[int]
    scope: str
    idle_timeout_minutes: int
    absolute_timeout_hours: int
    def __init__(self, scope: _Optional[str] = ..., idle_timeout_minutes: _Optional[int] = ..., absolute_timeout_hours: _Optional[int] = ...) -> None: ...

class VerifyMfaRequest(_message.Message):
    __slots__ = ("context", "mfa_token", "code", "recovery_code")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MFA_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_CODE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    mfa_token: str
    code: str
    recovery_code: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., mfa_token: _Optional[str] = ..., code: _Optional[str] = ..., recovery_code: _Optional[str] = ...) -> None: ...

class VerifyMfaResponse(_message.Message):
    __slots__ = ("user", "amr", "auth_time", "active_team", "token_delivery", "device_token", "session_grant")
    USER_FIELD_NUMBER: _ClassVar[int]
    AMR_FIELD_NUMBER: _ClassVar[int]
    AUTH_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TEAM_FIELD_NUMBER: _ClassVar[int]
    TOKEN_DELIVERY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_GRANT_FIELD_NUMBER: _ClassVar[int]
    user: User
    amr: _containers.RepeatedScalarFieldContainer[str]
    auth_time: _timestamp_pb2.Timestamp
    active_team: Team
    token_delivery: str
    device_token: str
    session_grant: SessionGrant
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ..., amr: _Optional[_Iterable[str]] = ..., auth_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active_team: _Optional[_Union[Team, _Mapping]] = ..., token_delivery: _Optional[str] = ..., device_token: _Optional[str] = ..., session_grant: _Optional[_Union[SessionGrant, _Mapping]] = ...) -> None: ...

class ReauthenticateRequest(_message.Message):
    __slots__ = ("context", "user_id", "password", "code")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    password: str
    code: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., password: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ReauthenticateResponse(_message.Message):
    __slots__ = ("amr", "auth_time")
    AMR_FIELD_NUMBER: _ClassVar[int]
    AUTH_TIME_FIELD_NUMBER: _ClassVar[int]
    amr: _containers.RepeatedScalarFieldContainer[str]
    auth_time: _timestamp_pb2.Timestamp
    def __init__(self, amr: _Optional[_Iterable[str]] = ..., auth_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NotifyNewDeviceRequest(_message.Message):
    __slots__ = ("context", "user_id", "device_label")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_LABEL_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    device_label: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., device_label: _Optional[str] = ...) -> None: ...

class NotifyNewDeviceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: User
    def __init__(self, user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class SetActiveTeamRequest(_message.Message):
    __slots__ = ("user_id", "team_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    team_id: str
    def __init__(self, user_id: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class SetActiveTeamResponse(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: Team
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...

class GrantForTeamRequest(_message.Message):
    __slots__ = ("user_id", "team_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    team_id: str
    def __init__(self, user_id: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class GrantForTeamResponse(_message.Message):
    __slots__ = ("team", "session_grant")
    TEAM_FIELD_NUMBER: _ClassVar[int]
    SESSION_GRANT_FIELD_NUMBER: _ClassVar[int]
    team: Team
    session_grant: SessionGrant
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ..., session_grant: _Optional[_Union[SessionGrant, _Mapping]] = ...) -> None: ...

class RequestPasswordResetRequest(_message.Message):
    __slots__ = ("context", "email")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    email: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., email: _Optional[str] = ...) -> None: ...

class RequestPasswordResetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetPasswordRequest(_message.Message):
    __slots__ = ("context", "token", "new_password")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    token: str
    new_password: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., token: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class ResetPasswordResponse(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class ChangePasswordRequest(_message.Message):
    __slots__ = ("context", "user_id", "current_password", "new_password")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    current_password: str
    new_password: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., current_password: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

class ChangePasswordResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMfaStatusRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetMfaStatusResponse(_message.Message):
    __slots__ = ("totp_enabled", "recovery_codes_remaining")
    TOTP_ENABLED_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_CODES_REMAINING_FIELD_NUMBER: _ClassVar[int]
    totp_enabled: bool
    recovery_codes_remaining: int
    def __init__(self, totp_enabled: _Optional[bool] = ..., recovery_codes_remaining: _Optional[int] = ...) -> None: ...

class EnrollTotpRequest(_message.Message):
    __slots__ = ("context", "user_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ...) -> None: ...

class EnrollTotpResponse(_message.Message):
    __slots__ = ("secret", "otpauth_uri", "qr_svg")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    OTPAUTH_URI_FIELD_NUMBER: _ClassVar[int]
    QR_SVG_FIELD_NUMBER: _ClassVar[int]
    secret: str
    otpauth_uri: str
    qr_svg: str
    def __init__(self, secret: _Optional[str] = ..., otpauth_uri: _Optional[str] = ..., qr_svg: _Optional[str] = ...) -> None: ...

class ConfirmTotpRequest(_message.Message):
    __slots__ = ("context", "user_id", "code")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    code: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ConfirmTotpResponse(_message.Message):
    __slots__ = ("recovery_codes",)
    RECOVERY_CODES_FIELD_NUMBER: _ClassVar[int]
    recovery_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recovery_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class DisableTotpRequest(_message.Message):
    __slots__ = ("context", "user_id", "password", "code")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    password: str
    code: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., password: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class DisableTotpResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegenerateRecoveryCodesRequest(_message.Message):
    __slots__ = ("context", "user_id", "code")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    code: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class RegenerateRecoveryCodesResponse(_message.Message):
    __slots__ = ("recovery_codes",)
    RECOVERY_CODES_FIELD_NUMBER: _ClassVar[int]
    recovery_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recovery_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateTeamRequest(_message.Message):
    __slots__ = ("context", "owner_user_id", "name")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OWNER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    owner_user_id: str
    name: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., owner_user_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateTeamResponse(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: Team
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...

class GetTeamsRequest(_message.Message):
    __slots__ = ("team_ids",)
    TEAM_IDS_FIELD_NUMBER: _ClassVar[int]
    team_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, team_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTeamsResponse(_message.Message):
    __slots__ = ("teams",)
    TEAMS_FIELD_NUMBER: _ClassVar[int]
    teams: _containers.RepeatedCompositeFieldContainer[Team]
    def __init__(self, teams: _Optional[_Iterable[_Union[Team, _Mapping]]] = ...) -> None: ...

class UpdateTeamRequest(_message.Message):
    __slots__ = ("context", "team_id", "name", "session_idle_timeout_minutes", "session_absolute_timeout_hours", "mfa_required")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SESSION_IDLE_TIMEOUT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SESSION_ABSOLUTE_TIMEOUT_HOURS_FIELD_NUMBER: _ClassVar[int]
    MFA_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    name: str
    session_idle_timeout_minutes: int
    session_absolute_timeout_hours: int
    mfa_required: bool
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., name: _Optional[str] = ..., session_idle_timeout_minutes: _Optional[int] = ..., session_absolute_timeout_hours: _Optional[int] = ..., mfa_required: _Optional[bool] = ...) -> None: ...

class UpdateTeamResponse(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: Team
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...

class UpdateBillingRequest(_message.Message):
    __slots__ = ("context", "team_id", "plan", "billing_email")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    BILLING_EMAIL_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    plan: str
    billing_email: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., plan: _Optional[str] = ..., billing_email: _Optional[str] = ...) -> None: ...

class UpdateBillingResponse(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: Team
    def __init__(self, team: _Optional[_Union[Team, _Mapping]] = ...) -> None: ...

class CreateInvitationRequest(_message.Message):
    __slots__ = ("context", "team_id", "email", "role")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    email: str
    role: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., email: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class CreateInvitationResponse(_message.Message):
    __slots__ = ("invitation",)
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    invitation: Invitation
    def __init__(self, invitation: _Optional[_Union[Invitation, _Mapping]] = ...) -> None: ...

class ListInvitationsRequest(_message.Message):
    __slots__ = ("team_id", "page")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    page: _common_pb2.PageRequest
    def __init__(self, team_id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListInvitationsResponse(_message.Message):
    __slots__ = ("invitations", "page")
    INVITATIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    invitations: _containers.RepeatedCompositeFieldContainer[Invitation]
    page: _common_pb2.PageResponse
    def __init__(self, invitations: _Optional[_Iterable[_Union[Invitation, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RevokeInvitationRequest(_message.Message):
    __slots__ = ("context", "team_id", "invitation_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    INVITATION_ID_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    team_id: str
    invitation_id: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., team_id: _Optional[str] = ..., invitation_id: _Optional[str] = ...) -> None: ...

class RevokeInvitationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AcceptInvitationRequest(_message.Message):
    __slots__ = ("context", "user_id", "token")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    token: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class AcceptInvitationResponse(_message.Message):
    __slots__ = ("team_id", "role", "invitation_id")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INVITATION_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    role: str
    invitation_id: str
    def __init__(self, team_id: _Optional[str] = ..., role: _Optional[str] = ..., invitation_id: _Optional[str] = ...) -> None: ...

class TeamChanged(_message.Message):
    __slots__ = ("team_id", "plan")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    plan: str
    def __init__(self, team_id: _Optional[str] = ..., plan: _Optional[str] = ...) -> None: ...

class LockAccountRequest(_message.Message):
    __slots__ = ("context", "alert_id", "user_id", "subject_hash", "until", "reason")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_HASH_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    alert_id: str
    user_id: str
    subject_hash: str
    until: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., alert_id: _Optional[str] = ..., user_id: _Optional[str] = ..., subject_hash: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class LockAccountResponse(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...

class RequireMfaRequest(_message.Message):
    __slots__ = ("context", "alert_id", "user_id", "reason")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    alert_id: str
    user_id: str
    reason: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., alert_id: _Optional[str] = ..., user_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RequireMfaResponse(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    def __init__(self, applied: _Optional[bool] = ...) -> None: ...

class NotifyTeamOwnersRequest(_message.Message):
    __slots__ = ("context", "alert_id", "team_id", "owner_user_ids", "rule", "severity", "alert_time")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ALERT_TIME_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    alert_id: str
    team_id: str
    owner_user_ids: _containers.RepeatedScalarFieldContainer[str]
    rule: str
    severity: str
    alert_time: _timestamp_pb2.Timestamp
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., alert_id: _Optional[str] = ..., team_id: _Optional[str] = ..., owner_user_ids: _Optional[_Iterable[str]] = ..., rule: _Optional[str] = ..., severity: _Optional[str] = ..., alert_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NotifyTeamOwnersResponse(_message.Message):
    __slots__ = ("mailed",)
    MAILED_FIELD_NUMBER: _ClassVar[int]
    mailed: int
    def __init__(self, mailed: _Optional[int] = ...) -> None: ...
