"""The gateway's change feed on a real NATS, through the kit's NatsLink: each notice drops what
it names from /v1/auth/me's cache (and the plan and role caches), nothing else."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import nats
import redis.asyncio as aioredis

from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import audit_events, nats_bus
from deelrx_kit.nats_link import NatsLink
from deelrx_kit.settings import Settings
from gateway.change_feed import ChangeFeed
from gateway.denials import DenialRecorder
from gateway.plans import PlanCache
from gateway.profile_cache import Caller, Loaders, Membership, ProfileCache
from gateway.revocation import RevocationSet
from gateway.roles import RoleCache


class Services:
    def __init__(self) -> None:
        self.loads: list[str] = []

    async def user(self, user_id: str) -> dict[str, Any]:
        self.loads.append(f"user:{user_id}")
        return {"id": user_id}

    async def session(self, session_id: str) -> dict[str, Any]:
        self.loads.append(f"session:{session_id}")
        return {"id": session_id}

    async def team(self, team_id: str) -> dict[str, str]:
        self.loads.append(f"team:{team_id}")
        return {"id": team_id, "name": "Acme", "plan": "starter"}

    async def membership(self, user_id: str, team_id: str) -> Membership:
        self.loads.append(f"membership:{user_id}")
        return "staff", ()

    async def plan(self, team_id: str) -> str:
        return "starter"

    async def role(self, user_id: str, team_id: str) -> str | None:
        return "staff"


async def _until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the notice never arrived"
        await asyncio.sleep(0.02)


async def test_notices_drop_what_they_name(nats_url: str, redis_url: str) -> None:
    services = Services()
    profiles = ProfileCache(Loaders(services.user, services.session, services.team, services.membership), 100)
    redis = aioredis.from_url(redis_url)
    gw = SimpleNamespace(
        profiles=profiles,
        plans=PlanCache(services.plan),
        roles=RoleCache(services.role),
        revocations=RevocationSet(redis, ttl_seconds=300),
        denials=DenialRecorder(),
        nats_connected=False,
    )

    async def resync() -> None:
        gw.revocations.connected = True

    link = NatsLink(Settings(nats_url=nats_url), "gateway-test", ensure_streams=False)
    ChangeFeed(gw, resync).attach(link)  # type: ignore[arg-type]
    stop = asyncio.Event()
    await link.run(stop)
    publisher = await nats.connect(nats_url)
    try:
        assert gw.nats_connected and gw.roles.feed_healthy
        callers = [Caller(u, f"ses_{u}", "tm_1", 0, ("", "")) for u in ("usr_a", "usr_b")]

        async def warm() -> None:
            for caller in callers:
                await profiles.me(caller)
            services.loads.clear()

        async def reloaded() -> list[str]:
            for caller in callers:
                await profiles.me(caller)
            loads = sorted(services.loads)
            services.loads.clear()
            return loads

        await warm()
        await publisher.publish(
            nats_bus.RBAC_CHANGED_PREFIX + "tm_1",
            rbac_pb2.AuthorizationChanged(team_id="tm_1", revision=2, user_id="usr_a").SerializeToString(),
        )
        await _until(lambda: ("usr_a", "tm_1") not in profiles.memberships._items)
        assert await reloaded() == ["membership:usr_a"]

        await publisher.publish(
            nats_bus.TEAM_CHANGED_SUBJECT, identity_pb2.TeamChanged(team_id="tm_1").SerializeToString()
        )
        await _until(lambda: profiles.teams.get("tm_1") is None)
        assert await reloaded() == ["team:tm_1"]

        event = audit_events.new_event(
            "mfa.enabled", source="identity", now=datetime.now(UTC), actor_user_id="usr_b", target=("user", "usr_b")
        )
        await publisher.publish(audit_events.subject_for(event), event.SerializeToString())
        await _until(lambda: profiles.users.get("usr_b") is None)
        assert await reloaded() == ["membership:usr_b", "user:usr_b"]  # its memberships too, to be safe

        await publisher.publish(
            nats_bus.SESSIONS_REVOKED_SUBJECT,
            sessions_pb2.SessionRevoked(session_ids=["ses_usr_a"]).SerializeToString(),
        )
        await _until(lambda: gw.revocations.known_revoked("ses_usr_a"))
        assert profiles.sessions.get("ses_usr_a") is None and profiles.sessions.get("ses_usr_b") is not None
    finally:
        stop.set()
        await publisher.close()
        await link.close()
        await redis.aclose()
