"""AuditActions over in-memory stores: a team's triage of an alert (PATCH /v1/teams/{id}/alerts/{id})
is kept per team and audited in the same transaction; exports and verifications are audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.audit.domain.alerts import AlertRecord
from services.audit.domain.events import ChainCheck
from tests.unit.audit.fakes import T0, AuditWorld

ADMIN = common_pb2.RequestContext(user_id="u_admin", team_id="t1", request_id="req_1")


async def world_with_alerts() -> AuditWorld:
    w = AuditWorld()
    await w.log.record_alert(AlertRecord("alr_team", T0, "mass_export", "medium", team_id="t1"))
    await w.log.record_alert(
        AlertRecord("alr_account", T0, "brute_force", "high", subject="user:u1", user_ids=("u1", "u_other"))
    )
    return w


async def update(w: AuditWorld, alert_id: str, status: str, note: str = "", team: str = "t1") -> AlertRecord:
    return await w.actions.update_alert(
        context=ADMIN, team_id=team, member_user_ids=["u1", "u_admin"], alert_id=alert_id, status=status, note=note
    )


async def test_acknowledging_an_alert_keeps_the_status_and_audits_the_change() -> None:
    w = await world_with_alerts()
    w.clock.advance(minutes=5)

    view = await update(w, "alr_team", "acknowledged", "  looking into it ")

    assert (view.status, view.note, view.status_changed_by) == ("acknowledged", "looking into it", "u_admin")
    assert view.status_changed_at == T0 + timedelta(minutes=5)
    [listed] = await w.actions.with_team_states("t1", [w.alerts.alerts["alr_team"]])
    assert (listed.status, listed.note) == ("acknowledged", "looking into it")
    [audited] = w.outbox.events("security.alert_updated")
    assert (audited.team_id, audited.actor.user_id) == ("t1", "u_admin")
    assert (audited.target.type, audited.target.id) == ("alert", "alr_team")
    assert w.outbox._notified == 1


async def test_each_change_records_the_previous_status_and_a_repeat_records_nothing() -> None:
    w = await world_with_alerts()
    await update(w, "alr_team", "acknowledged")
    await update(w, "alr_team", "acknowledged")  # nothing changes
    await update(w, "alr_team", "resolved", "false positive")

    audited = w.outbox.events("security.alert_updated")
    assert len(audited) == 2
    assert [e.details["previous_status"] for e in audited] == ["open", "acknowledged"]
    assert audited[1].details["status"] == "resolved" and audited[1].details["note"] == "false positive"


async def test_an_account_alert_has_its_own_status_in_each_team_that_sees_it() -> None:
    w = await world_with_alerts()
    await update(w, "alr_account", "resolved")

    alert = w.alerts.alerts["alr_account"]
    [in_t1] = await w.actions.with_team_states("t1", [alert])
    [in_t2] = await w.actions.with_team_states("t2", [alert])
    assert (in_t1.status, in_t2.status) == ("resolved", "open")


async def test_an_alert_the_team_may_not_see_is_not_found_and_nothing_is_recorded() -> None:
    w = await world_with_alerts()
    for alert_id, team in (("alr_team", "t2"), ("alr_missing", "t1")):
        with pytest.raises(DomainError) as err:
            await update(w, alert_id, "resolved", team=team)
        assert err.value.code == "not_found"
    with pytest.raises(DomainError) as err:
        await w.actions.update_alert(
            context=ADMIN, team_id="t1", member_user_ids=["u_admin"], alert_id="alr_account", status="resolved"
        )  # about u1, who is not a member of t1 here
    assert err.value.code == "not_found"
    assert w.triage.states == {} and w.outbox.messages == []


@pytest.mark.parametrize(
    ("status", "note"), [("open", ""), ("closed", ""), ("resolved", "x" * 1001), ("resolved", "a\x00b")]
)
async def test_invalid_triage_is_refused(status: str, note: str) -> None:
    w = await world_with_alerts()
    with pytest.raises(DomainError):
        await update(w, "alr_team", status, note)
    assert w.triage.states == {} and w.outbox.messages == []


async def test_a_failure_while_auditing_leaves_the_status_unchanged() -> None:
    w = await world_with_alerts()

    async def broken(*args: object) -> None:
        raise RuntimeError("outbox unavailable")

    w.outbox.add = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await update(w, "alr_team", "resolved")
    assert w.triage.states == {}


async def test_exports_and_verifications_are_audited() -> None:
    w = AuditWorld()
    await w.actions.record_export(context=ADMIN, team_id="t1", format="csv", since=T0, until=T0 + timedelta(days=1))
    await w.actions.record_verification(
        context=ADMIN, team_id="t1", user_id="", result=ChainCheck(False, 7, "", "evt_bad")
    )

    [exported] = w.outbox.events("audit.exported")
    assert exported.details["format"] == "csv" and exported.details["since"].startswith("2026-05-01T09:00:00")
    [verified] = w.outbox.events("audit.verified")
    assert verified.outcome == "failure"
    assert verified.details["first_bad_event_id"] == "evt_bad" and verified.details["events_checked"] == 7
    with pytest.raises(DomainError):
        await w.actions.record_export(context=ADMIN, team_id="t1", format="xml", since=None, until=None)
