"""Domain errors shared by every service, keyed by the stable public error code.

Services raise these from their use cases; one gRPC interceptor turns them into a status
code plus an `ErrorDetail` in trailing metadata, and the gateway turns that into
problem+json with the same `code`. Anything else is a bug: logged in full, answered as
INTERNAL without detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

# public code -> (HTTP status, gRPC status, default title)
CODES: dict[str, tuple[int, grpc.StatusCode, str]] = {
    "malformed_request": (400, grpc.StatusCode.INVALID_ARGUMENT, "Malformed request"),
    "invalid_credentials": (401, grpc.StatusCode.UNAUTHENTICATED, "Invalid credentials"),
    "unauthenticated": (401, grpc.StatusCode.UNAUTHENTICATED, "Authentication required"),
    "session_expired": (401, grpc.StatusCode.UNAUTHENTICATED, "Session expired"),
    "invalid_mfa_code": (401, grpc.StatusCode.UNAUTHENTICATED, "Invalid MFA code"),
    "reauthentication_required": (401, grpc.StatusCode.UNAUTHENTICATED, "Reauthentication required"),
    "invalid_token": (400, grpc.StatusCode.INVALID_ARGUMENT, "Invalid or expired token"),
    "email_not_verified": (403, grpc.StatusCode.PERMISSION_DENIED, "Email not verified"),
    "forbidden": (403, grpc.StatusCode.PERMISSION_DENIED, "Forbidden"),
    "csrf_failed": (403, grpc.StatusCode.PERMISSION_DENIED, "CSRF check failed"),
    "mfa_enrollment_required": (403, grpc.StatusCode.PERMISSION_DENIED, "MFA enrollment required"),
    "not_found": (404, grpc.StatusCode.NOT_FOUND, "Not found"),
    "method_not_allowed": (405, grpc.StatusCode.UNIMPLEMENTED, "Method not allowed"),
    "conflict": (409, grpc.StatusCode.ALREADY_EXISTS, "Conflict"),
    "payload_too_large": (413, grpc.StatusCode.INVALID_ARGUMENT, "Payload too large"),
    "unsupported_media_type": (415, grpc.StatusCode.INVALID_ARGUMENT, "Unsupported media type"),
    "validation_error": (422, grpc.StatusCode.INVALID_ARGUMENT, "Validation error"),
    "account_locked": (429, grpc.StatusCode.RESOURCE_EXHAUSTED, "Account locked"),
    "rate_limited": (429, grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many requests"),
    "internal": (500, grpc.StatusCode.INTERNAL, "Internal error"),
    "unavailable": (503, grpc.StatusCode.UNAVAILABLE, "Service unavailable"),
}

# What a bare gRPC status (no ErrorDetail attached) means to the gateway.
STATUS_TO_CODE: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "validation_error",
    grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
    grpc.StatusCode.PERMISSION_DENIED: "forbidden",
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.ALREADY_EXISTS: "conflict",
    grpc.StatusCode.FAILED_PRECONDITION: "conflict",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "rate_limited",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "unavailable",
    # A capability this deployment does not serve yet: unavailable, never a 500.
    grpc.StatusCode.UNIMPLEMENTED: "unavailable",
}


@dataclass(frozen=True)
class Violation:
    pointer: str
    detail: str


@dataclass
class DomainError(Exception):
    """An expected failure with a stable public code and a message safe to show users."""

    code: str
    message: str = ""
    retry_after_seconds: int = 0
    violations: list[Violation] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown error code {self.code!r}")
        if not self.message:
            self.message = CODES[self.code][2]
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        return CODES[self.code][0]

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return CODES[self.code][1]


def validation_error(pointer: str, detail: str) -> DomainError:
    return DomainError("validation_error", detail, violations=[Violation(pointer, detail)])


def not_found(what: str = "Not found") -> DomainError:
    return DomainError("not_found", what)


def conflict(message: str) -> DomainError:
    return DomainError("conflict", message)


def forbidden(message: str = "Forbidden") -> DomainError:
    return DomainError("forbidden", message)
