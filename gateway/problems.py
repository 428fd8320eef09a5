"""RFC 9457 problem+json answers with the stable `code` of docs/api.md."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from deelrx_kit.errors import CODES, DomainError
from gateway.exchange import find_exchange

ERROR_TYPE_BASE = "https://docs.deelrx.com/errors/"
PROBLEM_JSON = "application/problem+json"
UNAVAILABLE_RETRY_AFTER_SECONDS = 2


def problem_response(
    request: Request | None, error: DomainError, headers: dict[str, str] | None = None
) -> JSONResponse:
    status, _, title = CODES[error.code]
    exchange = find_exchange(request) if request is not None else None
    body: dict[str, Any] = {
        "type": ERROR_TYPE_BASE + error.code,
        "title": title,
        "status": status,
        "detail": error.message,
        "code": error.code,
        "request_id": exchange.request_id if exchange is not None else "",
    }
    if error.violations or error.code == "validation_error":
        body["errors"] = [{"pointer": v.pointer, "detail": v.detail} for v in error.violations]
    extra = dict(headers or {})
    if error.retry_after_seconds:
        extra["Retry-After"] = str(error.retry_after_seconds)
    elif error.code == "unavailable":
        # A dependency is down (API.md: 503 with Retry-After): ask clients to come back shortly.
        extra.setdefault("Retry-After", str(UNAVAILABLE_RETRY_AFTER_SECONDS))
    return JSONResponse(body, status_code=status, headers=extra, media_type=PROBLEM_JSON)
