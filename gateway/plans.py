"""Each team's plan, cached in the gateway for rate limiting.

Entries expire after a short TTL and are marked stale at once by a NATS `teams.changed`
event, so a plan change applies to the next request. When identity cannot answer, the last
known plan keeps applying for at most `max_stale` seconds (then the starter plan, the
strictest), and identity is asked again only every few seconds: an identity outage slows
nothing and refuses no team traffic. Each fallback is counted in `/metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from deelrx.identity.v1 import identity_pb2
from deelrx_kit.plans import DEFAULT_PLAN

log = structlog.get_logger("deelrx.gateway.plans")
PLAN_TTL_SECONDS = 30.0
MAX_STALE_SECONDS = 600.0
RETRY_AFTER_FAILURE_SECONDS = 5.0

PLAN_FALLBACKS = Counter(
    "deelrx_plan_lookup_fallback_total",
    "Rate-limit plan lookups answered without identity: last known plan (stale) or the starter plan (default)",
    ["reason"],
)


@dataclass
class _Entry:
    plan: str
    fresh_until: float
    loaded_at: float


class PlanCache:
    def __init__(
        self,
        load: Callable[[str], Awaitable[str]],
        ttl: float = PLAN_TTL_SECONDS,
        *,
        max_stale: float = MAX_STALE_SECONDS,
        retry_after_failure: float = RETRY_AFTER_FAILURE_SECONDS,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._max_stale = max_stale
        self._retry_after_failure = retry_after_failure
        self._plans: dict[str, _Entry] = {}
        self._identity_down_until = 0.0

    async def plan_of(self, team_id: str) -> str:
        now = time.monotonic()
        hit = self._plans.get(team_id)
        if hit is not None and hit.fresh_until > now:
            return hit.plan
        if self._identity_down_until > now:
            return self._fallback(hit, now)
        try:
            plan = await self._load(team_id)
        except Exception as exc:  # noqa: BLE001 - identity unreachable or failing
            self._identity_down_until = time.monotonic() + self._retry_after_failure
            log.warning("plan_lookup_failed", team_id=team_id, error=str(exc))
            return self._fallback(hit, now)
        loaded = time.monotonic()
        self._plans[team_id] = _Entry(plan, loaded + self._ttl, loaded)
        return plan

    def _fallback(self, hit: _Entry | None, now: float) -> str:
        if hit is not None and now - hit.loaded_at <= self._max_stale:
            PLAN_FALLBACKS.labels(reason="stale").inc()
            return hit.plan
        PLAN_FALLBACKS.labels(reason="default").inc()
        return DEFAULT_PLAN

    def on_team_changed(self, data: bytes) -> None:
        """A `teams.changed` notice (`TeamChanged`): drop that team's plan; an unreadable
        notice drops every plan."""
        try:
            team_id = identity_pb2.TeamChanged.FromString(data).team_id
        except DecodeError:
            team_id = ""
        self.invalidate(team_id or None)

    def invalidate(self, team_id: str | None = None) -> None:
        """Ask identity on the next request; the old plan stays only as an outage fallback."""
        entries = self._plans.values() if team_id is None else filter(None, [self._plans.get(team_id)])
        for entry in entries:
            entry.fresh_until = 0.0
