"""Teams: creation, reads, settings and billing.

Authorization (who may change the team) is decided by the caller through rbac before these run;
making the owner a member is rbac's too. Every change, its audit event and the `teams.changed`
notice are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2
from deelrx_kit.errors import not_found, validation_error
from deelrx_kit.ids import has_prefix, new_id
from deelrx_kit.nats_bus import TEAM_CHANGED_SUBJECT
from deelrx_kit.plans import DEFAULT_PLAN
from services.identity.domain import team_rules
from services.identity.domain.accounts import check_team_name, parse_email
from services.identity.domain.model import Team, TeamSettings
from services.identity.ports import Tx
from services.identity.use_cases.core import Core

MAX_TEAM_IDS = 200


class Teams:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def get_teams(self, team_ids: Sequence[str]) -> list[Team]:
        if len(team_ids) > MAX_TEAM_IDS:
            raise validation_error("/team_ids", f"Ask for at most {MAX_TEAM_IDS} teams at once.")
        wanted = [i for i in team_ids if has_prefix(i, "tm")]
        if not wanted:
            return []
        async with self.core.db.lookup() as tx:
            return await self.core.stores.teams.many(tx, wanted)

    async def create_team(
        self, owner_user_id: str, name: str, context: common_pb2.RequestContext | None = None
    ) -> Team:
        """The team record only; making the owner a member is rbac's (called by the orchestrator)."""
        core, stores = self.core, self.core.stores
        clean_name = check_team_name(name)
        now = core.clock.now()
        team = Team(
            id=new_id("tm"),
            name=clean_name,
            plan=DEFAULT_PLAN,
            billing_email="",
            created_at=now,
            settings=TeamSettings(),
        )
        async with core.db.transaction() as tx:
            if await stores.users.get(tx, owner_user_id) is None:
                raise not_found("User not found")
            await stores.teams.add(tx, team, created_by=owner_user_id)
            await stores.users.set_first_active_team(tx, owner_user_id, team.id, now)
            await core.event(
                tx,
                "team.created",
                context,
                team_id=team.id,
                actor_user_id=owner_user_id,
                target=("team", team.id),
                details={"name": team.name, "plan": team.plan},
            )
        core.committed()
        return team

    async def update_team(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        *,
        name: str | None = None,
        idle_minutes: int | None = None,
        absolute_hours: int | None = None,
        mfa_required: bool | None = None,
    ) -> Team:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check_team_name(name)
        if idle_minutes is not None:
            values["session_idle_timeout_minutes"] = team_rules.check_idle_minutes(idle_minutes)
        if absolute_hours is not None:
            values["session_absolute_timeout_hours"] = team_rules.check_absolute_hours(absolute_hours)
        if mfa_required is not None:
            values["mfa_required"] = mfa_required
        details = {"changed": sorted(values)}
        return await self._change(context, team_id, "team.updated", values, lambda _before: details)

    async def update_billing(
        self, context: common_pb2.RequestContext | None, team_id: str, plan: str, billing_email: str | None
    ) -> Team:
        team_rules.check_plan(plan)
        values: dict[str, Any] = {"plan": plan}
        if billing_email is not None:
            values["billing_email"] = parse_email(billing_email, "/billing_email").display if billing_email else ""
        return await self._change(
            context, team_id, "billing.plan_changed", values, lambda before: {"from_plan": before.plan, "to_plan": plan}
        )

    async def _change(
        self,
        context: common_pb2.RequestContext | None,
        team_id: str,
        event: str,
        values: dict[str, Any],
        details: Any,
    ) -> Team:
        """Apply `values` to the locked team row, announce `teams.changed`, record `event`."""
        core = self.core
        now = core.clock.now()
        async with core.db.transaction() as tx:
            before = await self.locked_team(tx, team_id)
            if values:
                await core.stores.teams.update(tx, team_id, now, **values)
                await self._team_changed(tx, team_id, values.get("plan", before.plan))
                await core.event(tx, event, context, team_id=team_id, target=("team", team_id), details=details(before))
            team = await self.locked_team(tx, team_id)
        core.committed()
        return team

    async def locked_team(self, tx: Tx, team_id: str) -> Team:
        team = await self.core.stores.teams.get(tx, team_id, for_update=True) if has_prefix(team_id, "tm") else None
        if team is None:
            raise not_found("Team not found")
        return team

    async def _team_changed(self, tx: Tx, team_id: str, plan: str) -> None:
        notice = identity_pb2.TeamChanged(team_id=team_id, plan=plan)
        await self.core.events.add(tx, TEAM_CHANGED_SUBJECT, notice, new_id("evt"))
