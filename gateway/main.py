"""bootstrap(): wires settings, gRPC clients, Redis, NATS feeds and the two HTTP listeners."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import structlog
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.errors import DomainError
from deelrx_kit.logging import configure_logging
from deelrx_kit.nats_link import NatsLink
from deelrx_kit.plans import DEFAULT_PLAN
from deelrx_kit.production import UnsafeProductionSettings, refuse_unsafe_production
from deelrx_kit.redis_url import connect_redis
from deelrx_kit.secret_file import warn_if_development_exposed
from deelrx_kit.settings import Settings
from gateway.activity import ActivityReporter
from gateway.admin import create_admin_app
from gateway.app import create_app
from gateway.change_feed import ChangeFeed
from gateway.clients import ServiceClients, call
from gateway.plans import PlanCache
from gateway.profile_cache import ProfileCache, grpc_loaders
from gateway.ratelimit import RateLimiter
from gateway.ratelimit_audit import ExceededReporter
from gateway.redis_breaker import RedisBreaker
from gateway.revocation import RevocationSet
from gateway.roles import RoleCache
from gateway.state import AnonymousLimits, Gateway
from gateway.tokens import TokenVerifier

log = structlog.get_logger("deelrx.gateway")


def check_public_url(settings: Settings) -> None:
    """Plain http is for loopback development only (docs/api.md)."""
    parts = urlsplit(settings.public_url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise SystemExit(f"DEELRX_PUBLIC_URL must be https:// unless it is a loopback http URL: {settings.public_url}")
    log.warning("insecure_public_url", public_url=settings.public_url, note="cookies without __Host- and Secure")


@dataclass
class GatewayProcess:
    gw: Gateway
    app: FastAPI
    admin: FastAPI
    nats: NatsLink
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def nc(self) -> NATS | None:
        return self.nats.nc

    async def start_background(self) -> None:
        self.tasks.append(asyncio.create_task(self.nats.run(self.stop_event)))
        # Loads the JWKS now and every DEELRX_JWKS_REFRESH_SECONDS (sessions may start after us).
        refresh = self.gw.verifier.run_refresh(self.gw.settings.jwks_refresh_seconds, self.stop_event)
        self.tasks.append(asyncio.create_task(refresh))
        if self.gw.activity is not None:
            self.tasks.append(asyncio.create_task(self.gw.activity.run(self.stop_event)))

    async def stop(self) -> None:
        self.stop_event.set()
        if self.gw.activity is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.gw.activity.flush(), timeout=2)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.nats.close()
        await self.gw.clients.close()
        await self.gw.limiter.breaker.close()
        await self.gw.redis.aclose()


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other gateway processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # listener says IPPROTO_TCP (with proto 0 a response written in parts waits for delayed ACKs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def bootstrap(settings: Settings) -> GatewayProcess:
    check_public_url(settings)
    clients = ServiceClients.connect(settings)
    redis = connect_redis(settings.redis_url)
    # One breaker for every gateway use of Redis: a hanging Redis costs one short deadline.
    breaker = RedisBreaker(redis.ping, timeout=settings.redis_timeout_ms / 1000)
    reporter = ExceededReporter()

    async def fetch_jwks() -> str:
        reply: sessions_pb2.GetJwksResponse = await call(
            clients.sessions.GetJwks, sessions_pb2.GetJwksRequest(), timeout=3
        )
        return reply.jwks_json

    async def load_plan(team_id: str) -> str:
        # Short deadline: when identity hangs, the plan cache falls back to the last known plan.
        reply = await call(clients.identity.GetTeams, identity_pb2.GetTeamsRequest(team_ids=[team_id]), timeout=2)
        return reply.teams[0].plan if reply.teams else DEFAULT_PLAN

    async def touch_sessions(session_ids: list[str]) -> None:
        await call(
            clients.sessions.TouchSessions, sessions_pb2.TouchSessionsRequest(session_ids=session_ids), timeout=5
        )

    async def load_role(user_id: str, team_id: str) -> str | None:
        try:
            reply: rbac_pb2.GetMembershipResponse = await call(
                clients.rbac.GetMembership, rbac_pb2.GetMembershipRequest(user_id=user_id, team_id=team_id)
            )
        except DomainError as exc:
            if exc.code == "not_found":
                return None
            raise
        return reply.membership.role

    gw = Gateway(
        settings=settings,
        clients=clients,
        redis=redis,
        verifier=TokenVerifier(fetch_jwks, issuer=settings.public_url, audience=settings.jwt_audience),
        revocations=RevocationSet(redis, ttl_seconds=settings.access_token_ttl_seconds + 60, breaker=breaker),
        limiter=RateLimiter(
            redis,
            breaker=breaker,
            replicas=settings.gateway_replicas,
            on_exceeded=reporter,
        ),
        plans=PlanCache(load_plan),
        secret=settings.secret(),
        anonymous_limits=AnonymousLimits(
            settings.rate_limit_anonymous_per_ip,
            settings.rate_limit_anonymous_per_account,
            refresh_per_ip=settings.rate_limit_refresh_per_ip,
            public_per_ip=settings.rate_limit_public_per_ip,
            ipv6_prefix=settings.rate_limit_ipv6_prefix,
        ),
        profiles=ProfileCache(grpc_loaders(clients), settings.me_cache_entries),
        activity=ActivityReporter(touch_sessions),
        roles=RoleCache(load_role),
    )

    async def resync_revocations() -> None:
        try:
            reply = await call(clients.sessions.ListRecentRevocations, sessions_pb2.ListRecentRevocationsRequest())
            gw.revocations.add(reply.session_ids)
            gw.revocations.connected = True
        except Exception as exc:  # noqa: BLE001 - stay on the Redis fallback until it works
            log.warning("revocation_resync_failed", error=str(exc))

    # The gateway publishes and subscribes; the services own the streams.
    link = NatsLink(settings, "gateway", ensure_streams=False)
    ChangeFeed(gw, resync_revocations).attach(link)
    process = GatewayProcess(gw, create_app(gw), create_admin_app(gw), link)
    reporter.publisher.nats = lambda: process.nc
    return process


async def serve(settings: Settings) -> None:
    process = bootstrap(settings)
    await process.start_background()
    public = uvicorn.Server(
        uvicorn.Config(
            process.app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    admin = uvicorn.Server(
        uvicorn.Config(
            process.admin, host=settings.admin_host, port=settings.admin_port, log_config=None, access_log=False
        )
    )
    # We own signal handling so both servers stop together.
    for server in (public, admin):
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        public.should_exit = True
        admin.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown)
    log.info("gateway_listening", url=settings.public_url, port=settings.http_port, admin_port=settings.admin_port)
    sockets = [reuse_port_socket(settings.http_host, settings.http_port)] if settings.http_reuse_port else None
    try:
        await asyncio.gather(public.serve(sockets=sockets), admin.serve())
    finally:
        await process.stop()


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_level, log_pii=settings.log_pii)
    warn_if_development_exposed(settings.env, http_host=settings.http_host, admin_host=settings.admin_host)
    try:
        refuse_unsafe_production(settings, "gateway")
    except UnsafeProductionSettings as exc:
        raise SystemExit(str(exc)) from None
    asyncio.run(serve(settings))
