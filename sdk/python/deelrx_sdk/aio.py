"""The asynchronous client: the same groups and rules as `Client`; coroutines that need a refresh
at the same time share one refresh call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

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
from deelrx_sdk.client import _Groups
from deelrx_sdk.errors import Unauthenticated


class AsyncClient(_Groups):
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        refresh_margin_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        self._retry = retry or RetryPolicy()
        self._margin = refresh_margin_seconds
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self.tokens: Tokens | None = None
        self.refreshes = 0
        self._init_groups()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def login(self, email: str, password: str, *, mfa_code: str | Callable[[], str] | None = None) -> Any:
        body = await self.auth.login_password(email, password)
        if body.get("mfa_required") and mfa_code is not None:
            body = await self.auth.login_mfa(body["mfa_token"], mfa_code() if callable(mfa_code) else mfa_code)
        return body

    async def me(self) -> Any:
        return await self.auth.me()

    async def logout(self) -> None:
        try:
            await self._call("POST", "/v1/auth/logout")
        finally:
            self.tokens = None

    async def refresh(self, stale: Tokens | None = None) -> None:
        async with self._lock:
            current = self.tokens
            if current is None:
                raise Unauthenticated(401, {"code": "unauthenticated", "detail": "not logged in"})
            if stale is not None and current is not stale:
                return
            self.refreshes += 1
            response = await self._send(
                "POST", "/v1/auth/refresh", {"json": {"refresh_token": current.refresh_token}}, {}
            )
            if response.status_code >= 400:
                if problem_of(response).get("code") in RENEW_CODES:
                    self.tokens = None
                raise error_of(response)
            self.tokens = Tokens.from_body(response.json())

    async def security_stream(self, team_id: str) -> AsyncIterator[dict[str, Any]]:
        await self._renew_if_due()
        headers = self._auth_headers()
        async with self._http.stream("GET", f"/v1/teams/{team_id}/security/stream", headers=headers, timeout=None) as r:
            if r.status_code >= 400:
                await r.aread()
                raise error_of(r)
            lines: list[str] = []
            async for line in r.aiter_lines():
                if line == "":
                    event = parse_sse(lines)
                    lines = []
                    if event is not None:
                        yield event
                else:
                    lines.append(line)

    async def _call(
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
            await self._renew_if_due()
        used = self.tokens
        response = await self._send(method, path, kwargs, {**extra, **(self._auth_headers() if auth else {})})
        if response.status_code == 401 and auth and used is not None:
            if problem_of(response).get("code") in RENEW_CODES:
                await self.refresh(stale=used)
                response = await self._send(method, path, kwargs, {**extra, **self._auth_headers()})
        if response.status_code >= 400:
            raise error_of(response)
        body = body_of(response)
        if store_tokens and isinstance(body, dict) and "access_token" in body:
            self.tokens = Tokens.from_body(body)
        return body

    async def _renew_if_due(self) -> None:
        tokens = self.tokens
        if tokens is not None and tokens.needs_refresh(self._margin):
            await self.refresh(stale=tokens)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.access_token}"} if self.tokens else {}

    async def _send(self, method: str, path: str, kwargs: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError:
                delay = self._retry.delay_after_failure(method, headers, attempt)
                if delay is None:
                    raise
            else:
                delay = self._retry.delay_after_answer(method, headers, response, attempt)
                if delay is None:
                    return response
            attempt += 1
            await self._sleep(delay)
