"""Everything a request handler needs, built once per process by `main.bootstrap()`."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from deelrx_kit.redis_url import AnyRedis
from deelrx_kit.settings import Settings
from gateway.activity import ActivityReporter
from gateway.cached_answer import CachedAnswer
from gateway.client_ip import Network, parse_networks
from gateway.clients import ServiceClients
from gateway.cookies import CookieJar, cookie_names
from gateway.denials import DenialRecorder
from gateway.plans import PlanCache
from gateway.profile_cache import ProfileCache
from gateway.ratelimit import RateLimiter
from gateway.revocation import RevocationSet
from gateway.roles import RoleCache
from gateway.tokens import TokenVerifier


@dataclass
class AnonymousLimits:
    """Limits for unauthenticated traffic, per rolling minute: auth endpoints per client IP and
    per account, refreshes per client IP (their own budget), public endpoints per client IP."""

    per_ip: int
    per_account: int
    refresh_per_ip: int = 300
    public_per_ip: int = 300
    ipv6_prefix: int = 64


@dataclass
class Gateway:
    settings: Settings
    clients: ServiceClients
    redis: AnyRedis
    verifier: TokenVerifier
    revocations: RevocationSet
    limiter: RateLimiter
    plans: PlanCache
    secret: bytes
    anonymous_limits: AnonymousLimits
    profiles: ProfileCache
    trusted_proxies: list[Network] = field(default_factory=list)
    nats_connected: bool = False
    # Readiness answers, computed at most once a second (gateway/readiness.py).
    readiness: CachedAnswer[dict[str, bool]] = field(default_factory=lambda: CachedAnswer(1.0))
    activity: ActivityReporter | None = None
    roles: RoleCache | None = None
    denials: DenialRecorder = field(default_factory=DenialRecorder)

    def __post_init__(self) -> None:
        self.cookies = CookieJar(cookie_names(self.settings.public_is_https), self.settings.public_is_https)
        self.trusted_proxies = parse_networks(self.settings.trusted_proxies)


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw
