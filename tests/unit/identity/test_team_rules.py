"""Team settings bounds, plans and invitation state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deelrx_kit.errors import DomainError
from services.identity.domain import team_rules
from services.identity.domain.mail import invitation_mail
from services.identity.domain.team_rules import Invitation


@pytest.mark.parametrize("value", [5, 17, 30])
def test_idle_minutes_within_bounds(value: int) -> None:
    assert team_rules.check_idle_minutes(value) == value


@pytest.mark.parametrize("value", [-1, 0, 4, 31, 10_000])
def test_idle_minutes_outside_bounds(value: int) -> None:
    with pytest.raises(DomainError) as info:
        team_rules.check_idle_minutes(value)
    assert info.value.violations[0].pointer == "/settings/session_idle_timeout_minutes"


@pytest.mark.parametrize("value", [0, 13, 24])
def test_absolute_hours_outside_bounds(value: int) -> None:
    with pytest.raises(DomainError):
        team_rules.check_absolute_hours(value)


def test_plans_and_roles() -> None:
    assert team_rules.check_plan("enterprise") == "enterprise"
    for bad in ("", "gold", "Starter"):
        with pytest.raises(DomainError):
            team_rules.check_plan(bad)
    with pytest.raises(DomainError):
        team_rules.check_invitable_role("admin")


def test_invitation_usable_only_once_unrevoked_and_unexpired() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base = Invitation("inv_1", "tm_1", "a@x.io", "a@x.io", "staff", "usr_1", now, now + team_rules.INVITATION_TTL)
    assert base.usable(now + timedelta(days=6, hours=23))
    assert not base.usable(now + timedelta(days=7))
    assert not Invitation(**{**base.__dict__, "accepted_by": "usr_2"}).usable(now)
    assert not Invitation(**{**base.__dict__, "revoked": True}).usable(now)


def test_invitation_mail_carries_the_accept_link() -> None:
    mail = invitation_mail("a@x.io", "Acme", "Ada", "manager", "https://auth.example/", "tok/en+1")
    assert "https://auth.example/accept-invite?token=tok%2Fen%2B1" in mail.text
    assert "Acme" in mail.subject
