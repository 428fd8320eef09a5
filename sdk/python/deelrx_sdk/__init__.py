"""Python clients for the DeelRx authentication API (httpx): `Client` (sync) and `AsyncClient`.
`AuthzClient` (gRPC, for CRM services asking rbac directly) is imported only when used, so the
HTTP clients need nothing but httpx."""

from typing import Any

from deelrx_sdk._policy import RetryPolicy, Tokens
from deelrx_sdk.aio import AsyncClient
from deelrx_sdk.client import AuthClient, Client
from deelrx_sdk.errors import (
    AccountLocked,
    ApiError,
    Conflict,
    CsrfFailed,
    EmailNotVerified,
    Forbidden,
    InternalError,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidToken,
    MfaEnrollmentRequired,
    NotFound,
    RateLimited,
    ReauthenticationRequired,
    SessionExpired,
    Unauthenticated,
    Unavailable,
    ValidationError,
)

_AUTHZ = frozenset({"AuthzClient", "AuthzDecision", "CheckItem"})


def __getattr__(name: str) -> Any:
    if name in _AUTHZ:
        from deelrx_sdk import authz

        return getattr(authz, name)
    raise AttributeError(f"module 'deelrx_sdk' has no attribute {name!r}")


__all__ = [
    "AccountLocked",
    "ApiError",
    "AsyncClient",
    "AuthClient",
    "AuthzClient",
    "AuthzDecision",
    "CheckItem",
    "Client",
    "Conflict",
    "CsrfFailed",
    "EmailNotVerified",
    "Forbidden",
    "InternalError",
    "InvalidCredentials",
    "InvalidMfaCode",
    "InvalidToken",
    "MfaEnrollmentRequired",
    "NotFound",
    "RateLimited",
    "ReauthenticationRequired",
    "RetryPolicy",
    "SessionExpired",
    "Tokens",
    "Unauthenticated",
    "Unavailable",
    "ValidationError",
]
