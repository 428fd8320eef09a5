"""What people do with the audit trail, itself audited: acknowledging and resolving alerts,
exporting events, verifying a chain.

The audit service's own events (`security.alert_updated`, `audit.exported`,
`audit.verified`) are staged in its outbox in the same transaction as the change and reach
the store through JetStream like every other service's events, so the detector sees them
too (`mass_export`) and a NATS outage loses none.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx.common.v1 import common_pb2
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import Clock
from deelrx_kit.db import reading, transaction
from deelrx_kit.errors import DomainError, validation_error
from deelrx_kit.outbox import Outbox
from services.audit.domain.alerts import AlertRecord, AlertState, view_for_team
from services.audit.domain.events import ChainCheck, time_text
from services.audit.domain.paging import check_id
from services.audit.ports import AlertStore, TriageStore

TRIAGE_STATUSES = ("acknowledged", "resolved")
MAX_NOTE = 1000
EXPORT_FORMATS = ("ndjson", "csv")


def _clean_note(note: str) -> str:
    note = unicodedata.normalize("NFC", note).strip()
    if len(note) > MAX_NOTE:
        raise validation_error("/note", f"note must be at most {MAX_NOTE} characters")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in note):
        raise validation_error("/note", "note must not contain control characters")
    return note


def with_state(alert: AlertRecord, state: AlertState | None) -> AlertRecord:
    if state is None:
        return alert
    return replace(
        alert,
        status=state.status,
        note=state.note,
        status_changed_at=state.changed_at,
        status_changed_by=state.changed_by,
    )


class AuditActions:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox: Outbox,
        *,
        alerts: AlertStore,
        triage: TriageStore,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.outbox = outbox
        self.alerts = alerts
        self.triage = triage
        self.audit = AuditTrail(outbox, source="audit", clock=clock)

    # -- alerts ------------------------------------------------------------------------
    async def with_team_states(self, team_id: str, alerts: Sequence[AlertRecord]) -> list[AlertRecord]:
        """The alerts with the status this team gave them."""
        if not alerts:
            return []
        async with reading(self.sessionmaker) as s:
            states = await self.triage.states_for(s, team_id, [a.id for a in alerts])
        return [with_state(a, states.get(a.id)) for a in alerts]

    async def update_alert(
        self,
        *,
        context: common_pb2.RequestContext,
        team_id: str,
        member_user_ids: Sequence[str],
        alert_id: str,
        status: str,
        note: str = "",
    ) -> AlertRecord:
        check_id("/team_id", team_id)
        check_id("/alert_id", alert_id)
        if not team_id or not alert_id:
            raise validation_error("/alert_id", "team_id and alert_id are required")
        if status not in TRIAGE_STATUSES:
            raise validation_error("/status", "status must be acknowledged or resolved")
        note = _clean_note(note)
        members = [m for m in member_user_ids if m]
        async with transaction(self.sessionmaker) as s:
            stored = await self.alerts.get_alert(s, alert_id)
            view = view_for_team(stored, team_id, members) if stored is not None else None
            if view is None:
                raise DomainError("not_found", "No such alert")
            current = (await self.triage.states_for(s, team_id, [alert_id])).get(alert_id)
            before = with_state(view, current)
            if before.status == status and before.note == note:
                return before  # nothing changes: no new event
            state = AlertState(status, note, self.clock.now(), context.user_id)
            await self.triage.set_state(s, alert_id, team_id, state)
            details: dict[str, Any] = {"rule": view.rule, "status": status, "previous_status": before.status}
            if note:
                details["note"] = note
            await self.audit.record(
                s,
                "security.alert_updated",
                context,
                team_id=team_id,
                target=("alert", alert_id),
                details=details,
            )
        self.outbox.notify()
        return with_state(view, state)

    # -- exports and verifications ---------------------------------------------------------
    async def record_export(
        self,
        *,
        context: common_pb2.RequestContext,
        team_id: str,
        format: str,
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        if format and format not in EXPORT_FORMATS:
            raise validation_error("/format", "format must be ndjson or csv")
        details: dict[str, Any] = {"format": format or "ndjson"}
        if since is not None:
            details["since"] = time_text(since)
        if until is not None:
            details["until"] = time_text(until)
        async with transaction(self.sessionmaker) as s:
            await self.audit.record(
                s, "audit.exported", context, team_id=team_id, target=("team", team_id), details=details
            )
        self.outbox.notify()

    async def record_verification(
        self, *, context: common_pb2.RequestContext, team_id: str, user_id: str, result: ChainCheck
    ) -> None:
        details: dict[str, Any] = {"ok": result.ok, "events_checked": result.events_checked}
        if result.first_bad_event_id:
            details["first_bad_event_id"] = result.first_bad_event_id
        target = ("team", team_id) if team_id else ("user", user_id)
        async with transaction(self.sessionmaker) as s:
            await self.audit.record(
                s,
                "audit.verified",
                context,
                team_id=team_id,
                actor_user_id=context.user_id or user_id,
                target=target,
                outcome="success" if result.ok else "failure",
                details=details,
            )
        self.outbox.notify()
