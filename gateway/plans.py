"""Each team's plan, cached in the gateway for rate limiting.

Entries expire after a short TTL and are dropped at once by a NATS `teams.changed`
event, so a plan change applies to the next request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

PLAN_TTL_SECONDS = 30.0


class PlanCache:
    def __init__(self, load: Callable[[str], Awaitable[str]], ttl: float = PLAN_TTL_SECONDS) -> None:
        self._load = load
        self._ttl = ttl
        self._plans: dict[str, tuple[str, float]] = {}

    async def plan_of(self, team_id: str) -> str:
        hit = self._plans.get(team_id)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        plan = await self._load(team_id)
        self._plans[team_id] = (plan, time.monotonic() + self._ttl)
        return plan

    def invalidate(self, team_id: str | None = None) -> None:
        if team_id is None:
            self._plans.clear()
        else:
            self._plans.pop(team_id, None)
