"""Tables for what the audit service itself changes: the per-team status of alerts, and its
outbox (events about exports, verifications and alert triage)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Column, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from deelrx_kit.db import UtcDateTime, dialect_insert
from deelrx_kit.outbox import outbox_table
from services.audit.adapters.sql import metadata
from services.audit.domain.alerts import AlertState

# One row per (alert, team): a team acknowledging an account alert about its member does
# not change what another team sees of the same alert.
alert_states = Table(
    "alert_states",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("team_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("note", String(1000), nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("changed_by", String(64), nullable=False),
)

outbox = outbox_table(metadata)


async def states_for(session: AsyncSession, team_id: str, alert_ids: Collection[str]) -> dict[str, AlertState]:
    if not alert_ids:
        return {}
    rows = (
        await session.execute(
            select(alert_states).where(alert_states.c.team_id == team_id, alert_states.c.alert_id.in_(list(alert_ids)))
        )
    ).all()
    return {r.alert_id: AlertState(r.status, r.note, r.changed_at, r.changed_by) for r in rows}


async def set_state(session: AsyncSession, alert_id: str, team_id: str, state: AlertState) -> None:
    stmt = dialect_insert(session, alert_states).values(
        alert_id=alert_id,
        team_id=team_id,
        status=state.status,
        note=state.note,
        changed_at=state.changed_at,
        changed_by=state.changed_by,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["alert_id", "team_id"],
            set_={
                "status": state.status,
                "note": state.note,
                "changed_at": state.changed_at,
                "changed_by": state.changed_by,
            },
        )
    )
