from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deelrx_kit.errors import DomainError
from services.audit.domain.alerts import AlertRecord, view_for_team
from services.audit.domain.paging import Cursor, page_limit

T0 = datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


def test_cursor_round_trips_and_rejects_garbage() -> None:
    c = Cursor(T0, "evt_1")
    assert Cursor.decode(c.encode()) == c
    for bad in ("x", "W10", "bm90IGpzb24", Cursor(T0, "").encode().replace("A", "B"), "%%%"):
        with pytest.raises(DomainError) as info:
            Cursor.decode(bad)
        assert info.value.code == "validation_error"


def test_page_limit() -> None:
    assert page_limit(0) == 50
    assert page_limit(200) == 200
    for bad in (-1, 201):
        with pytest.raises(DomainError):
            page_limit(bad)


def spray() -> AlertRecord:
    return AlertRecord(
        id="alr_1",
        time=T0,
        rule="password_spray",
        severity="high",
        subject="ip:198.51.100.7",
        user_ids=("usr_a", "usr_b"),
        event_ids=("evt_a", "evt_b"),
        evidence={
            "window_seconds": 600,
            "threshold": 10,
            "count": 14,
            "ips": ["198.51.100.7"],
            "accounts": {"usr_a": {"count": 1, "event_ids": ["evt_a"]}, "usr_b": {"count": 2, "event_ids": ["evt_b"]}},
        },
    )


def test_account_alert_is_reduced_to_the_teams_members() -> None:
    view = view_for_team(spray(), "tm_1", ["usr_a", "usr_z"])
    assert view is not None
    assert view.user_ids == ("usr_a",)
    assert view.event_ids == ("evt_a",)
    assert view.evidence == {
        "window_seconds": 600,
        "threshold": 10,
        "accounts": {"usr_a": {"count": 1, "event_ids": ["evt_a"]}},
    }
    assert "usr_b" not in repr(view)


def test_alerts_of_other_teams_or_non_members_are_hidden() -> None:
    assert view_for_team(spray(), "tm_1", ["usr_z"]) is None
    team_alert = AlertRecord(id="alr_2", time=T0, rule="mass_export", severity="high", team_id="tm_2")
    assert view_for_team(team_alert, "tm_1", ["usr_a"]) is None
    assert view_for_team(team_alert, "tm_2", []) == team_alert


def test_subject_naming_another_user_is_blanked() -> None:
    alert = AlertRecord(
        id="alr_3", time=T0, rule="brute_force", severity="high", subject="user:usr_b", user_ids=("usr_a", "usr_b")
    )
    view = view_for_team(alert, "tm_1", ["usr_a"])
    assert view is not None and view.subject == ""
