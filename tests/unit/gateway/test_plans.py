"""Rate limiting keeps the last known plan while identity is down, and counts it."""

from __future__ import annotations

from prometheus_client import REGISTRY

from deelrx_kit.errors import DomainError
from gateway.plans import PlanCache


class Identity:
    """The plan lookup the gateway wires to identity.GetTeams; `up` toggles an outage."""

    def __init__(self, plan: str) -> None:
        self.plan, self.up, self.calls = plan, True, 0

    async def load(self, team_id: str) -> str:
        self.calls += 1
        if not self.up:
            raise DomainError("unavailable", "identity is down")
        return self.plan


def _fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("deelrx_plan_lookup_fallback_total", {"reason": reason}) or 0.0


async def test_identity_outage_keeps_the_last_known_plan_and_counts_it() -> None:
    identity = Identity("enterprise")
    plans = PlanCache(identity.load, ttl=0.0, max_stale=3600, retry_after_failure=3600)
    assert await plans.plan_of("tm_1") == "enterprise"
    identity.up = False
    before = _fallbacks("stale")
    assert [await plans.plan_of("tm_1") for _ in range(5)] == ["enterprise"] * 5
    assert _fallbacks("stale") - before == 5
    # Identity is asked once, then left alone until the retry interval has passed.
    assert identity.calls == 2


async def test_staleness_is_bounded_then_the_strictest_plan_applies() -> None:
    identity = Identity("enterprise")
    plans = PlanCache(identity.load, ttl=0.0, max_stale=0.0, retry_after_failure=0.0)
    assert await plans.plan_of("tm_1") == "enterprise"
    identity.up = False
    before = _fallbacks("default")
    assert await plans.plan_of("tm_1") == "starter"  # too old to trust
    assert await plans.plan_of("tm_never_seen") == "starter"
    assert _fallbacks("default") - before == 2


async def test_plan_change_event_refetches_but_keeps_the_fallback() -> None:
    identity = Identity("starter")
    plans = PlanCache(identity.load, ttl=3600, max_stale=3600, retry_after_failure=3600)
    assert await plans.plan_of("tm_1") == "starter"
    identity.plan = "professional"
    plans.invalidate("tm_1")
    assert await plans.plan_of("tm_1") == "professional"
    plans.invalidate()
    identity.up = False
    assert await plans.plan_of("tm_1") == "professional"
