"""Stored alerts and what a team may see of them.

A team sees (1) alerts raised in its own context (team_id = the team) as they are, and
(2) account alerts (team_id empty, e.g. brute_force against a login) that concern at least
one of its current members, reduced to those members: `user_ids` keeps only members,
`evidence` keeps only the rule parameters (window_seconds, threshold) and the per-account
entries (`evidence.accounts[<member id>]`) of members, `event_ids` keeps only the ids listed
in those entries, and `subject` is kept only when it names an IP or a member. Aggregates over
all accounts (total counts, distinct account counts, the full IP list) are dropped, since
they describe accounts of other teams.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

SHARED_EVIDENCE_KEYS = ("window_seconds", "threshold")


@dataclass(frozen=True)
class AlertRecord:
    id: str
    time: datetime
    rule: str
    severity: str
    team_id: str = ""
    subject: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    status: str = "open"
    user_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    # The viewing team's triage of the alert (UpdateAlert); empty until someone changes it.
    note: str = ""
    status_changed_at: datetime | None = None
    status_changed_by: str = ""


def view_for_team(alert: AlertRecord, team_id: str, member_user_ids: Collection[str]) -> AlertRecord | None:
    """The alert as `team_id` may see it, or None when it is none of the team's business."""
    if alert.team_id:
        return alert if alert.team_id == team_id else None
    members = set(member_user_ids)
    visible = [u for u in alert.user_ids if u in members]
    if not visible:
        return None
    evidence: dict[str, Any] = {k: alert.evidence[k] for k in SHARED_EVIDENCE_KEYS if k in alert.evidence}
    accounts = alert.evidence.get("accounts")
    kept: dict[str, Any] = {}
    event_ids: list[str] = []
    if isinstance(accounts, dict):
        for user_id in visible:
            entry = accounts.get(user_id)
            if isinstance(entry, dict):
                kept[user_id] = entry
                ids = entry.get("event_ids")
                if isinstance(ids, list):
                    event_ids.extend(i for i in ids if isinstance(i, str) and i in alert.event_ids)
    evidence["accounts"] = kept
    subject = alert.subject
    if not (subject.startswith("ip:") or subject.removeprefix("user:") in visible):
        subject = ""
    return replace(alert, subject=subject, evidence=evidence, user_ids=tuple(visible), event_ids=tuple(event_ids))


@dataclass(frozen=True)
class AlertState:
    """One team's triage of an alert."""

    status: str
    note: str
    changed_at: datetime
    changed_by: str
