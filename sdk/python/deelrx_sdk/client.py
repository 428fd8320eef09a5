"""A small, honest client: Bearer tokens in memory, one automatic renewal when the API
says the token is over (`unauthenticated` / `session_expired` only), bounded retries of
idempotent requests on 503 and connection errors."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

RENEW_CODES = frozenset({"unauthenticated", "session_expired"})
RETRY_STATUS = frozenset({502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class ApiError(Exception):
    """A problem+json answer."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code: str = problem.get("code", "unknown")
        super().__init__(f"{status} {self.code}: {problem.get('detail', '')}")


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float


class AuthClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0, retries: int = 2, transport: Any = None) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._retries = retries
        self._lock = threading.Lock()
        self.tokens: Tokens | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- authentication ----------------------------------------------------------------
    def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in with body delivery. Returns the body; `mfa_required` means call `login_mfa`."""
        body = self._send(
            "POST", "/v1/auth/login", json={"email": email, "password": password, "token_delivery": "body"}, auth=False
        )
        if not body.get("mfa_required"):
            self._store(body)
        return body

    def login_mfa(self, mfa_token: str, code: str) -> dict[str, Any]:
        body = self._send("POST", "/v1/auth/login/mfa", json={"mfa_token": mfa_token, "code": code}, auth=False)
        self._store(body)
        return body

    def refresh(self) -> None:
        with self._lock:
            if self.tokens is None:
                raise ApiError(401, {"code": "unauthenticated", "detail": "not logged in"})
            body = self._send(
                "POST", "/v1/auth/refresh", json={"refresh_token": self.tokens.refresh_token}, auth=False, renew=False
            )
            self._store(body)

    def logout(self) -> None:
        try:
            self._send("POST", "/v1/auth/logout")
        finally:
            self.tokens = None

    def me(self) -> dict[str, Any]:
        return self._send("GET", "/v1/auth/me")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs)

    # -- plumbing ------------------------------------------------------------------------
    def _store(self, body: dict[str, Any]) -> None:
        self.tokens = Tokens(body["access_token"], body["refresh_token"], time.time() + body["expires_in"])

    def _send(self, method: str, path: str, *, auth: bool = True, renew: bool = True, **kwargs: Any) -> Any:
        if auth and self.tokens and self.tokens.expires_at - time.time() < 30:
            self.refresh()
        response = self._with_retries(method, path, auth, kwargs)
        if response.status_code == 401 and auth and renew and self.tokens is not None:
            if _problem(response).get("code") in RENEW_CODES:
                self.refresh()
                response = self._with_retries(method, path, auth, kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _problem(response))
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    def _with_retries(self, method: str, path: str, auth: bool, kwargs: dict[str, Any]) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth and self.tokens is not None:
            headers["Authorization"] = f"Bearer {self.tokens.access_token}"
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError:
                if method not in IDEMPOTENT or attempt >= self._retries:
                    raise
            else:
                retryable = response.status_code in RETRY_STATUS and method in IDEMPOTENT
                if not retryable or attempt >= self._retries:
                    kwargs["headers"] = headers
                    return response
            attempt += 1
            time.sleep(min(0.2 * 2**attempt, 2.0))


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"code": "unknown", "detail": response.text[:200]}
    return body if isinstance(body, dict) else {"code": "unknown"}
