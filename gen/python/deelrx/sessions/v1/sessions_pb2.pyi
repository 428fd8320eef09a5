import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from deelrx.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Device(_message.Message):
    __slots__ = ("browser", "os", "type", "label")
    BROWSER_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    browser: str
    os: str
    type: str
    label: str
    def __init__(self, browser: _Optional[str] = ..., os: _Optional[str] = ..., type: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class SessionPolicy(_message.Message):
    __slots__ = ("idle_timeout_minutes", "absolute_timeout_hours")
    IDLE_TIMEOUT_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ABSOLUTE_TIMEOUT_HOURS_FIELD_NUMBER: _ClassVar[int]
    idle_timeout_minutes: int
    absolute_timeout_hours: int
    def __init__(self, idle_timeout_minutes: _Optional[int] = ..., absolute_timeout_hours: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "user_id", "team_id", "device", "ip", "created_at", "last_seen_at", "expires_at", "idle_expires_at", "amr", "auth_time", "scope", "revoked")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IDLE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    AMR_FIELD_NUMBER: _ClassVar[int]
    AUTH_TIME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    team_id: str
    device: Device
    ip: str
    created_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    idle_expires_at: _timestamp_pb2.Timestamp
    amr: _containers.RepeatedScalarFieldContainer[str]
    auth_time: _timestamp_pb2.Timestamp
    scope: str
    revoked: bool
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., team_id: _Optional[str] = ..., device: _Optional[_Union[Device, _Mapping]] = ..., ip: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idle_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amr: _Optional[_Iterable[str]] = ..., auth_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scope: _Optional[str] = ..., revoked: _Optional[bool] = ...) -> None: ...

class TokenPair(_message.Message):
    __slots__ = ("access_token", "refresh_token", "expires_in", "access_expires_at")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    ACCESS_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    refresh_token: str
    expires_in: int
    access_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, access_token: _Optional[str] = ..., refresh_token: _Optional[str] = ..., expires_in: _Optional[int] = ..., access_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("context", "user_id", "team_id", "amr", "auth_time", "scope", "policy")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AMR_FIELD_NUMBER: _ClassVar[int]
    AUTH_TIME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    team_id: str
    amr: _containers.RepeatedScalarFieldContainer[str]
    auth_time: _timestamp_pb2.Timestamp
    scope: str
    policy: SessionPolicy
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., team_id: _Optional[str] = ..., amr: _Optional[_Iterable[str]] = ..., auth_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scope: _Optional[str] = ..., policy: _Optional[_Union[SessionPolicy, _Mapping]] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session", "tokens", "new_device")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEW_DEVICE_FIELD_NUMBER: _ClassVar[int]
    session: Session
    tokens: TokenPair
    new_device: bool
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., tokens: _Optional[_Union[TokenPair, _Mapping]] = ..., new_device: _Optional[bool] = ...) -> None: ...

class RefreshRequest(_message.Message):
    __slots__ = ("context", "refresh_token")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    refresh_token: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., refresh_token: _Optional[str] = ...) -> None: ...

class RefreshResponse(_message.Message):
    __slots__ = ("session", "tokens")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    tokens: TokenPair
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., tokens: _Optional[_Union[TokenPair, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("user_id", "team_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    team_id: str
    def __init__(self, user_id: _Optional[str] = ..., team_id: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class RevokeSessionRequest(_message.Message):
    __slots__ = ("context", "session_id", "user_id", "reason")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    session_id: str
    user_id: str
    reason: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeSessionsRequest(_message.Message):
    __slots__ = ("context", "user_id", "team_id", "except_session_id", "reason")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    team_id: str
    except_session_id: str
    reason: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ..., team_id: _Optional[str] = ..., except_session_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeSessionsResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...

class SwitchTeamRequest(_message.Message):
    __slots__ = ("context", "session_id", "team_id", "policy")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    session_id: str
    team_id: str
    policy: SessionPolicy
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., session_id: _Optional[str] = ..., team_id: _Optional[str] = ..., policy: _Optional[_Union[SessionPolicy, _Mapping]] = ...) -> None: ...

class SwitchTeamResponse(_message.Message):
    __slots__ = ("session", "tokens")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    tokens: TokenPair
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., tokens: _Optional[_Union[TokenPair, _Mapping]] = ...) -> None: ...

class MarkReauthenticatedRequest(_message.Message):
    __slots__ = ("context", "session_id", "amr", "auth_time")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AMR_FIELD_NUMBER: _ClassVar[int]
    AUTH_TIME_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    session_id: str
    amr: _containers.RepeatedScalarFieldContainer[str]
    auth_time: _timestamp_pb2.Timestamp
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., session_id: _Optional[str] = ..., amr: _Optional[_Iterable[str]] = ..., auth_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MarkReauthenticatedResponse(_message.Message):
    __slots__ = ("session", "tokens")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    tokens: TokenPair
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., tokens: _Optional[_Union[TokenPair, _Mapping]] = ...) -> None: ...

class EndEnrollmentScopeRequest(_message.Message):
    __slots__ = ("context", "user_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    context: _common_pb2.RequestContext
    user_id: str
    def __init__(self, context: _Optional[_Union[_common_pb2.RequestContext, _Mapping]] = ..., user_id: _Optional[str] = ...) -> None: ...

class EndEnrollmentScopeResponse(_message.Message):
    __slots__ = ("updated",)
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    updated: int
    def __init__(self, updated: _Optional[int] = ...) -> None: ...

class GetJwksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetJwksResponse(_message.Message):
    __slots__ = ("jwks_json",)
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    jwks_json: str
    def __init__(self, jwks_json: _Optional[str] = ...) -> None: ...

class RotateSigningKeyRequest(_message.Message):
    __slots__ = ("emergency",)
    EMERGENCY_FIELD_NUMBER: _ClassVar[int]
    emergency: bool
    def __init__(self, emergency: _Optional[bool] = ...) -> None: ...

class RotateSigningKeyResponse(_message.Message):
    __slots__ = ("kid", "retired_kid")
    KID_FIELD_NUMBER: _ClassVar[int]
    RETIRED_KID_FIELD_NUMBER: _ClassVar[int]
    kid: str
    retired_kid: str
    def __init__(self, kid: _Optional[str] = ..., retired_kid: _Optional[str] = ...) -> None: ...

class TouchSessionsRequest(_message.Message):
    __slots__ = ("session_ids",)
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    session_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TouchSessionsResponse(_message.Message):
    __slots__ = ("touched",)
    TOUCHED_FIELD_NUMBER: _ClassVar[int]
    touched: int
    def __init__(self, touched: _Optional[int] = ...) -> None: ...

class ListRecentRevocationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRecentRevocationsResponse(_message.Message):
    __slots__ = ("session_ids",)
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    session_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SessionRevoked(_message.Message):
    __slots__ = ("session_ids", "user_id", "revoked_at", "reason", "heartbeat_from")
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FROM_FIELD_NUMBER: _ClassVar[int]
    session_ids: _containers.RepeatedScalarFieldContainer[str]
    user_id: str
    revoked_at: _timestamp_pb2.Timestamp
    reason: str
    heartbeat_from: str
    def __init__(self, session_ids: _Optional[_Iterable[str]] = ..., user_id: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., heartbeat_from: _Optional[str] = ...) -> None: ...
