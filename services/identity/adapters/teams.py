"""Teams: name, plan, billing address and session settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from services.identity.adapters.tables import teams
from services.identity.domain.model import Team, TeamSettings
from services.identity.ports import Tx

_BY_IDS = select(teams).where(teams.c.id.in_(bindparam("ids", expanding=True)))


def _team(row: Any) -> Team:
    return Team(
        id=row.id,
        name=row.name,
        plan=row.plan,
        billing_email=row.billing_email,
        created_at=row.created_at,
        settings=TeamSettings(
            session_idle_timeout_minutes=row.session_idle_timeout_minutes,
            session_absolute_timeout_hours=row.session_absolute_timeout_hours,
            mfa_required=row.mfa_required,
        ),
    )


class SqlTeamStore:
    async def add(self, tx: Tx, team: Team, created_by: str) -> None:
        await tx.execute(
            insert(teams).values(
                id=team.id,
                name=team.name,
                plan=team.plan,
                billing_email=team.billing_email,
                session_idle_timeout_minutes=team.settings.session_idle_timeout_minutes,
                session_absolute_timeout_hours=team.settings.session_absolute_timeout_hours,
                mfa_required=team.settings.mfa_required,
                created_by=created_by,
                created_at=team.created_at,
                updated_at=team.created_at,
            )
        )

    async def get(self, tx: Tx, team_id: str, *, for_update: bool = False) -> Team | None:
        """`for_update` locks the row (PostgreSQL) so changes of one team queue; SQLite
        writers are serialized anyway."""
        query = select(teams).where(teams.c.id == team_id)
        row = (await tx.execute(query.with_for_update() if for_update else query)).first()
        return _team(row) if row else None

    async def many(self, tx: Tx, team_ids: Sequence[str]) -> list[Team]:
        if not team_ids:
            return []
        rows = (await tx.execute(_BY_IDS, {"ids": list(team_ids)})).all()
        found = {row.id: _team(row) for row in rows}
        return [found[i] for i in dict.fromkeys(team_ids) if i in found]

    async def update(self, tx: Tx, team_id: str, now: datetime, **values: Any) -> None:
        await tx.execute(update(teams).where(teams.c.id == team_id).values(updated_at=now, **values))
