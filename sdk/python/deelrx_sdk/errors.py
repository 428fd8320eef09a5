"""Typed exceptions from problem+json answers: branch on the class (or `.code`), never on text."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A problem+json answer. `code` is the stable error code; `retry_after` comes from the header."""

    code = "unknown"

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None = None) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code", type(self).code))
        self.detail: str = str(problem.get("detail", ""))
        self.request_id: str = str(problem.get("request_id", ""))
        self.errors: list[dict[str, str]] = list(problem.get("errors", []) or [])
        self.retry_after = retry_after
        super().__init__(f"{status} {self.code}: {self.detail}".rstrip(": "))


class MalformedRequest(ApiError):
    code = "malformed_request"


class InvalidToken(ApiError):
    code = "invalid_token"


class InvalidCredentials(ApiError):
    code = "invalid_credentials"


class Unauthenticated(ApiError):
    code = "unauthenticated"


class SessionExpired(Unauthenticated):
    code = "session_expired"


class InvalidMfaCode(ApiError):
    code = "invalid_mfa_code"


class ReauthenticationRequired(ApiError):
    code = "reauthentication_required"


class EmailNotVerified(ApiError):
    code = "email_not_verified"


class Forbidden(ApiError):
    code = "forbidden"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


class MfaEnrollmentRequired(Forbidden):
    code = "mfa_enrollment_required"


class NotFound(ApiError):
    code = "not_found"


class MethodNotAllowed(ApiError):
    code = "method_not_allowed"


class Conflict(ApiError):
    code = "conflict"


class PayloadTooLarge(ApiError):
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    code = "unsupported_media_type"


class ValidationError(ApiError):
    code = "validation_error"


class RateLimited(ApiError):
    code = "rate_limited"


class AccountLocked(RateLimited):
    code = "account_locked"


class InternalError(ApiError):
    code = "internal"


class Unavailable(ApiError):
    code = "unavailable"


BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        MalformedRequest,
        InvalidToken,
        InvalidCredentials,
        Unauthenticated,
        SessionExpired,
        InvalidMfaCode,
        ReauthenticationRequired,
        EmailNotVerified,
        Forbidden,
        CsrfFailed,
        MfaEnrollmentRequired,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationError,
        RateLimited,
        AccountLocked,
        InternalError,
        Unavailable,
    )
}


def error_from(status: int, problem: dict[str, Any], retry_after: float | None = None) -> ApiError:
    cls = BY_CODE.get(str(problem.get("code", "")), ApiError)
    return cls(status, problem, retry_after)
