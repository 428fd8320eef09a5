"""What the sync and async clients share and decide the same way: tokens, when to refresh,
when and how long to wait before a retry, and reading problem+json."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from deelrx_sdk.errors import ApiError, error_from

RENEW_CODES = frozenset({"unauthenticated", "session_expired"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
BACKOFF_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float  # time.time() when the access token ends
    lifetime: float

    @classmethod
    def from_body(cls, body: dict[str, Any], now: float | None = None) -> Tokens:
        lifetime = float(body.get("expires_in", 300))
        return cls(body["access_token"], body["refresh_token"], (now or time.time()) + lifetime, lifetime)

    def needs_refresh(self, margin_seconds: float, now: float | None = None) -> bool:
        """Shortly before expiry: within `margin_seconds`, or the last fifth of a short lifetime."""
        margin = min(margin_seconds, self.lifetime / 5)
        return (now or time.time()) >= self.expires_at - margin


@dataclass(frozen=True)
class RetryPolicy:
    """429 `rate_limited`: wait `Retry-After` (when at most `max_wait`) and retry, any method (the
    request was refused before it ran). 502/503/504 and connection failures: exponential backoff with
    jitter (or `Retry-After`), only for idempotent calls: GET/HEAD/OPTIONS/PUT/DELETE, or a POST
    that carries an Idempotency-Key."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_wait: float = 10.0

    def delay_after_answer(
        self, method: str, headers: dict[str, str], response: httpx.Response, attempt: int
    ) -> float | None:
        if attempt >= self.attempts:
            return None
        if response.status_code == 429:
            retry_after = retry_after_seconds(response)
            if problem_of(response).get("code") != "rate_limited" or retry_after is None:
                return None
            return retry_after if retry_after <= self.max_wait else None
        if response.status_code in BACKOFF_STATUSES and idempotent(method, headers):
            retry_after = retry_after_seconds(response)
            if retry_after is not None:
                return retry_after if retry_after <= self.max_wait else None
            return self.backoff(attempt)
        return None

    def delay_after_failure(self, method: str, headers: dict[str, str], attempt: int) -> float | None:
        if attempt >= self.attempts or not idempotent(method, headers):
            return None
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2.0**attempt) * (0.5 + random.random() / 2)


def request_kwargs(json: Any, params: dict[str, Any] | None) -> dict[str, Any]:
    """httpx keyword arguments for a call: the JSON body if any, query parameters without Nones."""
    kwargs: dict[str, Any] = {}
    if json is not None:
        kwargs["json"] = json
    if params:
        kwargs["params"] = {k: v for k, v in params.items() if v is not None}
    return kwargs


def idempotent(method: str, headers: dict[str, str]) -> bool:
    return method in IDEMPOTENT_METHODS or (method == "POST" and any(k.lower() == "idempotency-key" for k in headers))


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def problem_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"code": "unknown", "detail": response.text[:200]}
    return body if isinstance(body, dict) else {"code": "unknown"}


def error_of(response: httpx.Response) -> ApiError:
    return error_from(response.status_code, problem_of(response), retry_after_seconds(response))


def body_of(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return {}
    if response.headers.get("content-type", "").startswith(("application/json", "application/problem+json")):
        return response.json()
    return response.content


def parse_sse(lines: list[str]) -> dict[str, Any] | None:
    """One Server-Sent Event from its lines: {"event", "id", "data"} (data parsed as JSON when it is)."""
    import json

    event, ident, data = "message", None, []
    for line in lines:
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "id":
            ident = value
        elif name == "data":
            data.append(value)
    if not data:
        return None
    text = "\n".join(data)
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return {"event": event, "id": ident, "data": parsed}
