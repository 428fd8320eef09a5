"""The synchronous client. Bearer tokens live in memory; the client refreshes them shortly before
they expire and once after `unauthenticated`/`session_expired` (never on another 401), with one
refresh for all threads that need it at once; it retries per `RetryPolicy`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from deelrx_sdk import groups
from deelrx_sdk._policy import (
    RENEW_CODES,
    RetryPolicy,
    Tokens,
    body_of,
    error_of,
    parse_sse,
    problem_of,
    request_kwargs,
)
from deelrx_sdk.errors import ApiError, Unauthenticated

__all__ = ["ApiError", "AuthClient", "Client", "Tokens"]


class _Groups:
    def _init_groups(self) -> None:
        self.auth = groups.Auth(self)  # type: ignore[arg-type]
        self.mfa = groups.Mfa(self)  # type: ignore[arg-type]
        self.sessions = groups.Sessions(self)  # type: ignore[arg-type]
        self.teams = groups.Teams(self)  # type: ignore[arg-type]
        self.members = groups.Members(self)  # type: ignore[arg-type]
        self.invitations = groups.Invitations(self)  # type: ignore[arg-type]
        self.billing = groups.Billing(self)  # type: ignore[arg-type]
        self.roles = groups.Roles(self)  # type: ignore[arg-type]
        self.assignments = groups.Assignments(self)  # type: ignore[arg-type]
        self.authz = groups.Authz(self)  # type: ignore[arg-type]
        self.audit = groups.Audit(self)  # type: ignore[arg-type]


class Client(_Groups):
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        refresh_margin_seconds: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._retry = retry or RetryPolicy()
        self._margin = refresh_margin_seconds
        self._sleep = sleep
        self._lock = threading.Lock()
        self.tokens: Tokens | None = None
        self.refreshes = 0  # how many refresh calls this client made (observability, tests)
        self._init_groups()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the usual entry points -------------------------------------------------------------
    def login(self, email: str, password: str, *, mfa_code: str | Callable[[], str] | None = None) -> Any:
        """Password step, then the MFA step when the account needs it and `mfa_code` is given
        (a code or a function returning one). Without it, an MFA answer is returned as is:
        call `auth.login_mfa(body["mfa_token"], code)`."""
        body = self.auth.login_password(email, password)
        if body.get("mfa_required") and mfa_code is not None:
            body = self.auth.login_mfa(body["mfa_token"], mfa_code() if callable(mfa_code) else mfa_code)
        return body

    def me(self) -> Any:
        return self.auth.me()

    def logout(self) -> None:
        try:
            self._call("POST", "/v1/auth/logout")
        finally:
            self.tokens = None

    def refresh(self, stale: Tokens | None = None) -> None:
        """Renews the tokens. With `stale`, does nothing when another caller already replaced them."""
        with self._lock:
            current = self.tokens
            if current is None:
                raise Unauthenticated(401, {"code": "unauthenticated", "detail": "not logged in"})
            if stale is not None and current is not stale:
                return
            self.refreshes += 1
            response = self._send("POST", "/v1/auth/refresh", {"json": {"refresh_token": current.refresh_token}}, {})
            if response.status_code >= 400:
                if problem_of(response).get("code") in RENEW_CODES:
                    self.tokens = None
                raise error_of(response)
            self.tokens = Tokens.from_body(response.json())

    def security_stream(self, team_id: str) -> Iterator[dict[str, Any]]:
        """Live `audit` and `alert` events: {"event", "id", "data"}; stops when the server closes."""
        self._renew_if_due()
        headers = self._auth_headers()
        with self._http.stream("GET", f"/v1/teams/{team_id}/security/stream", headers=headers, timeout=None) as r:
            if r.status_code >= 400:
                r.read()
                raise error_of(r)
            lines: list[str] = []
            for line in r.iter_lines():
                if line == "":
                    event = parse_sse(lines)
                    lines = []
                    if event is not None:
                        yield event
                else:
                    lines.append(line)

    # -- plumbing ------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        store_tokens: bool = False,
    ) -> Any:
        kwargs = request_kwargs(json, params)
        extra = dict(headers or {})
        if auth:
            self._renew_if_due()
        used = self.tokens
        response = self._send(method, path, kwargs, {**extra, **(self._auth_headers() if auth else {})})
        if response.status_code == 401 and auth and used is not None:
            if problem_of(response).get("code") in RENEW_CODES:
                self.refresh(stale=used)
                response = self._send(method, path, kwargs, {**extra, **self._auth_headers()})
        if response.status_code >= 400:
            raise error_of(response)
        body = body_of(response)
        if store_tokens and isinstance(body, dict) and "access_token" in body:
            self.tokens = Tokens.from_body(body)
        return body

    def _renew_if_due(self) -> None:
        tokens = self.tokens
        if tokens is not None and tokens.needs_refresh(self._margin):
            self.refresh(stale=tokens)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.access_token}"} if self.tokens else {}

    def _send(self, method: str, path: str, kwargs: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError:
                delay = self._retry.delay_after_failure(method, headers, attempt)
                if delay is None:
                    raise
            else:
                delay = self._retry.delay_after_answer(method, headers, response, attempt)
                if delay is None:
                    return response
            attempt += 1
            self._sleep(delay)


# The 0.1 name.
AuthClient = Client
