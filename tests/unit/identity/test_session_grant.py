"""Identity decides what a session may do in a team, from the team's settings: at login (the
active team) and at a team switch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deelrx_kit.errors import DomainError
from services.identity.domain.model import Team, TeamSettings, User
from services.identity.domain.session_grant import ENROLLMENT_SCOPE, SessionGrant, grant_for, grant_for_switch
from services.identity.grpc_api import session_grant_pb

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _user(mfa: bool) -> User:
    return User("usr_1", "a@example.com", "A", True, mfa, "tm_1", NOW)


def _team(required: bool, idle: int = 45, absolute: int = 8) -> Team:
    return Team("tm_1", "Acme", "starter", "billing@example.com", NOW, TeamSettings(idle, absolute, required))


def test_a_team_requiring_mfa_gives_a_member_without_totp_an_enrollment_only_session() -> None:
    grant = grant_for(_user(mfa=False), _team(required=True))
    assert grant == SessionGrant(ENROLLMENT_SCOPE, 45, 8) and grant.enrollment_only


def test_totp_or_a_team_without_the_policy_gives_a_full_session_with_the_team_timeouts() -> None:
    assert grant_for(_user(mfa=True), _team(required=True)) == SessionGrant("", 45, 8)
    assert grant_for(_user(mfa=False), _team(required=False, idle=10, absolute=2)) == SessionGrant("", 10, 2)


def test_no_active_team_leaves_the_sessions_defaults() -> None:
    assert grant_for(_user(mfa=False), None) == SessionGrant("", 0, 0)


def test_the_grant_travels_in_identitys_answer() -> None:
    message = session_grant_pb(_user(mfa=False), _team(required=True))
    assert (message.scope, message.idle_timeout_minutes, message.absolute_timeout_hours) == ("mfa_enrollment", 45, 8)


def test_a_switch_into_a_team_whose_policy_the_user_does_not_meet_is_refused_not_narrowed() -> None:
    with pytest.raises(DomainError) as refused:
        grant_for_switch(_user(mfa=False), _team(required=True))
    assert refused.value.code == "mfa_enrollment_required" and refused.value.http_status == 403
    assert grant_for_switch(_user(mfa=True), _team(required=True, idle=20, absolute=4)) == SessionGrant("", 20, 4)
    assert grant_for_switch(_user(mfa=False), _team(required=False)) == SessionGrant("", 45, 8)
