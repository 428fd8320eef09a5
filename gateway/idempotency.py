"""`Idempotency-Key` for POSTs that create something (docs/api.md conventions).

A creating POST (any POST route answering 201, or one marked with `@idempotent`) that carries
`Idempotency-Key` is run once per (caller, route template, key) within 24 hours:

- the first request runs; a 2xx answer (status, content type, body) is stored in Redis;
- a replay with the same body gets the stored answer (`Idempotent-Replayed: true`) and
  creates nothing;
- the same key with another body answers 409 `conflict`; so does a replay while the first
  request is still running;
- a non-2xx answer is not stored (a corrected retry may run), nor is anything while Redis is
  unreachable (the request then runs unprotected; counted in /metrics).

The caller is the user of a valid access token (Bearer, else the session cookie), otherwise
the client IP. Opting a route in takes one decorator, below the router's:

    @router.post("/things", status_code=200)
    @idempotent
    async def create_thing(...): ...
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from fastapi.routing import APIRoute
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deelrx_kit import redis_keys
from deelrx_kit.errors import DomainError
from deelrx_kit.redis_url import AnyRedis
from gateway.early_limits import count_unlimited
from gateway.exchange import find_exchange
from gateway.problems import problem_response
from gateway.state import Gateway
from gateway.tokens import InvalidToken

log = structlog.get_logger("deelrx.gateway.idempotency")

ANSWER_TTL_SECONDS = 24 * 3600
# A request still running holds its key this long at most (a crashed replica frees it).
IN_FLIGHT_TTL_SECONDS = 60
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("content-type", "location")
_MARK = "__deelrx_idempotent__"

IDEMPOTENCY_UNAVAILABLE = Counter(
    "deelrx_idempotency_unavailable_total", "Creating POSTs with an Idempotency-Key run unprotected: Redis unreachable"
)
IDEMPOTENT_REPLAYS = Counter(
    "deelrx_idempotent_replays_total", "Stored answers returned for a replayed Idempotency-Key"
)

F = TypeVar("F", bound=Callable[..., Any])


def idempotent(endpoint: F) -> F:
    """Opt a POST route in (routes answering 201 are in already)."""
    setattr(endpoint, _MARK, True)
    return endpoint


def is_idempotent_route(route: Any) -> bool:
    if not isinstance(route, APIRoute) or not route.methods or "POST" not in route.methods:
        return False
    return bool(getattr(route.endpoint, _MARK, False)) or route.status_code == 201


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(0x20 <= ord(ch) <= 0x7E for ch in key)


CallerOf = Callable[[Scope, Headers], Awaitable[str]]


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        gateway: Gateway | None = None,
        *,
        redis: AnyRedis | None = None,
        caller_of: CallerOf | None = None,
    ) -> None:
        """`gateway` supplies Redis and the caller (read at request time); tests may pass both."""
        self.app = app
        self.gw = gateway
        self._redis = redis
        self._caller_of = caller_of

    @property
    def redis(self) -> AnyRedis:
        if self._redis is None:
            assert self.gw is not None
            self._redis = self.gw.redis
        return self._redis

    async def caller_of(self, scope: Scope, headers: Headers) -> str:
        if self._caller_of is None:
            assert self.gw is not None
            self._caller_of = caller_from_credentials(self.gw)
        return await self._caller_of(scope, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get("idempotency-key")
        route = _route_of(scope) if key is not None else None
        if key is None or route is None:
            await self.app(scope, receive, send)
            return
        if not valid_key(key):
            error = DomainError(
                "malformed_request", f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters"
            )
            await self._count(scope)
            await problem_response(Request(scope), error)(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:  # the client left, or the body limit answered 413 already
            return
        caller = await self.caller_of(scope, headers)
        slot = redis_keys.IDEMPOTENCY_PREFIX + _digest(caller, route.path, key)
        fingerprint = _digest(scope["path"], body.decode("latin-1"))
        try:
            claimed = await self.redis.set(
                slot, json.dumps({"state": "running", "fp": fingerprint}), nx=True, ex=IN_FLIGHT_TTL_SECONDS
            )
            stored = None if claimed else await self.redis.get(slot)
        except RedisError as exc:
            IDEMPOTENCY_UNAVAILABLE.inc()
            log.warning("idempotency_unavailable", error=str(exc))
            await self.app(scope, _replay(body), send)
            return
        if not claimed:
            await self._answer_replay(scope, receive, send, stored, fingerprint)
            return
        await self._run_and_store(scope, send, body, slot, fingerprint)

    async def _answer_replay(
        self, scope: Scope, receive: Receive, send: Send, stored: bytes | str | None, fingerprint: str
    ) -> None:
        record = json.loads(stored) if stored else None
        if record is None:  # expired between SET and GET: treat as taken, the client retries
            error = DomainError("conflict", "A request with this Idempotency-Key is in progress; retry later")
        elif record.get("fp") != fingerprint:
            error = DomainError("conflict", "This Idempotency-Key was used with a different request")
        elif record.get("state") != "done":
            error = DomainError("conflict", "A request with this Idempotency-Key is in progress; retry later")
        else:
            IDEMPOTENT_REPLAYS.inc()
            body = base64.b64decode(record["body"])
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
            raw += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
            await self._count(scope)
            await send({"type": "http.response.start", "status": record["status"], "headers": raw})
            await send({"type": "http.response.body", "body": body})
            return
        await self._count(scope)
        await problem_response(Request(scope), error)(scope, receive, send)

    async def _count(self, scope: Scope) -> None:
        """Answered here, without the handler: the client IP's count applies, as to any `/v1` answer
        no limit counted (before the answer starts, so it carries the headers)."""
        request = Request(scope)
        if self.gw is not None and find_exchange(request) is not None:
            await count_unlimited(self.gw, request)

    async def _run_and_store(self, scope: Scope, send: Send, body: bytes, slot: str, fingerprint: str) -> None:
        status = 0
        kept: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def capturing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.decode("latin-1").lower() in KEPT_HEADERS:
                        kept.append((name.decode("latin-1"), value.decode("latin-1")))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        stored = False
        try:
            await self.app(scope, _replay(body), capturing_send)
            if 200 <= status < 300:
                record = {
                    "state": "done",
                    "fp": fingerprint,
                    "status": status,
                    "headers": kept,
                    "body": base64.b64encode(b"".join(chunks)).decode(),
                }
                await self.redis.set(slot, json.dumps(record), ex=ANSWER_TTL_SECONDS)
                stored = True
        except RedisError as exc:
            IDEMPOTENCY_UNAVAILABLE.inc()
            log.warning("idempotency_store_failed", error=str(exc))
        finally:
            if not stored:
                try:
                    await self.redis.delete(slot)  # the key is free for a corrected retry
                except RedisError:
                    pass  # expires after IN_FLIGHT_TTL_SECONDS


def _route_of(scope: Scope) -> APIRoute | None:
    """The idempotent route this request will reach, if any (routing happens after us)."""
    router = getattr(scope.get("app"), "router", None)
    route = _match(getattr(router, "routes", ()), scope, scope["path"])
    return route if is_idempotent_route(route) else None


def _all_routes(routes: Any, prefix: str = "") -> Any:
    """(full path, route) of every route, looking inside included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            include_prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from _all_routes(inner.routes, prefix + include_prefix)
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


HEADER_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Replays within 24 h return the first answer and create nothing; "
    "the same key with another body answers 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}


def document_in_openapi(app: Any) -> None:
    """List the Idempotency-Key header on every idempotent operation of `app`'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return dict(app.openapi_schema)
        spec: dict[str, Any] = build()
        for path, route in _all_routes(app.router.routes):
            operation = spec.get("paths", {}).get(path, {}).get("post")
            if operation is not None and is_idempotent_route(route):
                operation.setdefault("parameters", []).append(dict(HEADER_PARAMETER))
        app.openapi_schema = spec
        return spec

    app.openapi = openapi


def _match(routes: Any, scope: Scope, path: str) -> Any:
    for route in routes:
        # FastAPI keeps included routers as one route each (`original_router`); look inside.
        inner = getattr(route, "original_router", None)
        if inner is not None:
            prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            if path.startswith(prefix):
                found = _match(inner.routes, scope, path[len(prefix) :])
                if found is not None:
                    return found
            continue
        match, _ = route.matches({**scope, "path": path})
        if match is Match.FULL:
            return route
    return None


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts), True
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), False


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.hexdigest()


def caller_from_credentials(gw: Gateway) -> CallerOf:
    """The user of a valid access token (Bearer, else the session cookie), else the client IP."""

    async def caller_of(scope: Scope, headers: Headers) -> str:
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else ""
        else:
            token = Request(scope).cookies.get(gw.cookies.names.session, "")
        if token:
            try:
                return "usr:" + (await gw.verifier.verify(token)).user_id
            except InvalidToken:
                pass
        exchange = find_exchange(Request(scope))
        return "ip:" + (exchange.client_ip if exchange is not None else "")

    return caller_of
