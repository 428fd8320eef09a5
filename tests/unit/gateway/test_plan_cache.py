"""The gateway's plan cache follows identity's `teams.changed` notices."""

from __future__ import annotations

from deelrx.identity.v1 import identity_pb2
from gateway.plans import PlanCache


class Plans:
    def __init__(self) -> None:
        self.plans = {"tm_a": "starter", "tm_b": "starter"}
        self.loads = 0

    async def load(self, team_id: str) -> str:
        self.loads += 1
        return self.plans[team_id]


async def test_a_notice_drops_only_that_teams_plan() -> None:
    source = Plans()
    cache = PlanCache(source.load, ttl=3600)
    assert await cache.plan_of("tm_a") == "starter" and await cache.plan_of("tm_b") == "starter"
    source.plans = {"tm_a": "enterprise", "tm_b": "professional"}
    cache.on_team_changed(identity_pb2.TeamChanged(team_id="tm_a", plan="enterprise").SerializeToString())
    assert await cache.plan_of("tm_a") == "enterprise"
    assert await cache.plan_of("tm_b") == "starter"  # untouched until its own notice
    assert source.loads == 3


async def test_an_unreadable_notice_drops_every_plan() -> None:
    source = Plans()
    cache = PlanCache(source.load, ttl=3600)
    await cache.plan_of("tm_a")
    await cache.plan_of("tm_b")
    source.plans = {"tm_a": "enterprise", "tm_b": "professional"}
    cache.on_team_changed(b"\xff\xff not a protobuf")
    assert (await cache.plan_of("tm_a"), await cache.plan_of("tm_b")) == ("enterprise", "professional")
