"""Identity decides what a login's session may do, from the active team's settings."""

from __future__ import annotations

from datetime import UTC, datetime

from services.identity.domain.model import Team, TeamSettings, User
from services.identity.domain.session_grant import ENROLLMENT_SCOPE, SessionGrant, grant_for
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
