"""The gRPC server every service runs: health, reflection, error mapping, logs, metrics."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from deelrx_kit import grpc_errors
from deelrx_kit.caller_policy import CallerAuthorizationInterceptor
from deelrx_kit.errors import DomainError
from deelrx_kit.metrics import GRPC_LATENCY, GRPC_REQUESTS
from deelrx_kit.mtls import TlsFiles, server_credentials
from deelrx_kit.transient import is_transient

log = structlog.get_logger("deelrx.grpc")


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Maps DomainError to status + ErrorDetail, hides everything else, logs and measures."""

    def __init__(self, service: str) -> None:
        self.service = service
        # grpc.aio asks the interceptor on every call: the wrapped handler of each method is
        # built once, not per call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full_method = handler_call_details.method
        cached = self._wrapped.get(full_method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, full_method)
        self._wrapped[full_method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        method = full_method.rsplit("/", 1)[-1]
        if method in ("Check", "Watch") and "grpc.health" in full_method:
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _fail(self, context: grpc.aio.ServicerContext, method: str, exc: BaseException) -> None:
        if isinstance(exc, NotImplementedError):
            GRPC_REQUESTS.labels(self.service, method, "unimplemented").inc()
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented")
        if isinstance(exc, DomainError):
            GRPC_REQUESTS.labels(self.service, method, exc.code).inc()
            log.debug("rpc_failed", method=method, code=exc.code)  # an answer, not a fault
            await context.abort(exc.grpc_status, exc.message, trailing_metadata=grpc_errors.encode(exc))
        if isinstance(exc, Exception) and is_transient(exc):
            # A database, Redis or network hiccup: the caller may retry (503 at the gateway).
            unavailable = DomainError("unavailable", "A dependency is temporarily unavailable; retry shortly")
            GRPC_REQUESTS.labels(self.service, method, "unavailable").inc()
            log.warning("rpc_dependency_unavailable", method=method, error_type=type(exc).__name__)
            await context.abort(
                unavailable.grpc_status, unavailable.message, trailing_metadata=grpc_errors.encode(unavailable)
            )
        GRPC_REQUESTS.labels(self.service, method, "internal").inc()
        log.error("rpc_crashed", method=method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def _wrap_unary(self, inner: Any, method: str) -> Any:
        ok = GRPC_REQUESTS.labels(self.service, method, "ok")
        latency = GRPC_LATENCY.labels(self.service, method)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            structlog.contextvars.bind_contextvars(rpc=method, **_context_ids(request))
            try:
                response = await inner(request, context)
                ok.inc()
                return response
            except asyncio.CancelledError:
                raise
            except grpc.aio.AbortError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the one place errors are mapped
                await self._fail(context, method, exc)
            finally:
                latency.observe(time.perf_counter() - started)
                structlog.contextvars.unbind_contextvars("rpc", "request_id", "user_id", "session_id", "team_id")

        return call

    def _wrap_stream(self, inner: Any, method: str) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            structlog.contextvars.bind_contextvars(rpc=method, **_context_ids(request))
            try:
                async for item in inner(request, context):
                    yield item
                GRPC_REQUESTS.labels(self.service, method, "ok").inc()
            except asyncio.CancelledError:
                raise
            except grpc.aio.AbortError:
                raise
            except BaseException as exc:  # noqa: BLE001
                await self._fail(context, method, exc)

        return call


def _context_ids(request: Any) -> dict[str, str]:
    ctx = getattr(request, "context", None)
    if ctx is None or not hasattr(ctx, "request_id"):
        return {}
    ids = {"request_id": ctx.request_id, "user_id": ctx.user_id, "session_id": ctx.session_id, "team_id": ctx.team_id}
    return {k: v for k, v in ids.items() if v}


class GrpcService:
    """One service process: a grpc.aio server plus health, reflection and graceful stop.

    With `tls` the port requires a client certificate from the CA and every call is checked
    against the caller allow-list (deelrx_kit.caller_policy); without it the port is plaintext.
    `health_port` opens a second, plaintext port that serves only the health service, for probes.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        tls: TlsFiles | None = None,
        reflection: bool = True,
        health_port: int = 0,
        max_connection_age_seconds: int = 300,
        max_connection_age_grace_seconds: int = 3600,
    ) -> None:
        self.name = name
        self.address = f"{host}:{port}"
        self.tls = tls
        self.reflection = reflection
        interceptors: list[grpc.aio.ServerInterceptor] = [ServiceInterceptor(name)]
        if tls is not None:
            interceptors.insert(0, CallerAuthorizationInterceptor())
        options = [
            ("grpc.max_connection_age_ms", max_connection_age_seconds * 1000),
            # Calls in progress on an aged connection may finish within the grace: a stream (an
            # export of a million events takes minutes, a live stream longer) would be cut.
            ("grpc.max_connection_age_grace_ms", max_connection_age_grace_seconds * 1000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
        ]
        self.server = grpc.aio.server(interceptors=interceptors, options=options)
        self.health = health.aio.HealthServicer()
        self._service_names: list[str] = []
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if tls is not None:
            self.port = self.server.add_secure_port(self.address, server_credentials(tls))
        else:
            self.port = self.server.add_insecure_port(self.address)
            if host not in ("127.0.0.1", "::1", "localhost"):
                # Anyone who reaches this port can call every method as anyone (no caller identity).
                log.warning("grpc_plaintext_beyond_loopback", address=self.address)
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0
        if health_port:
            self.health_server = grpc.aio.server(options=options)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            self.health_port = self.health_server.add_insecure_port(f"{host}:{health_port}")

    def add(self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str) -> None:
        register(servicer, self.server)
        self._service_names.append(full_name)

    async def start(self) -> None:
        if self.reflection:
            reflection.enable_server_reflection(
                [*self._service_names, reflection.SERVICE_NAME, health.SERVICE_NAME], self.server
            )
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()
        for name in ["", *self._service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "grpc_listening",
            address=self.address,
            transport="mtls" if self.tls else "plaintext",
            reflection=self.reflection,
            health_port=self.health_port or None,
        )

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(grace)


async def run_until_signalled(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    """Start, wait for SIGINT/SIGTERM, then stop gracefully."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await start()
    await done.wait()
    await stop()


def channel(address: str, options: Iterable[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """A client channel with keepalive and a service config that retries UNAVAILABLE."""
    import json

    service_config = {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.service_config", json.dumps(service_config)),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.enable_retries", 1),
            *options,
        ],
    )
