"""Team `mfa_required`: a member without TOTP gets an enrollment-only session (`scp:
"mfa_enrollment"`) at login (identity decides it: `session_grant`), and may not switch into such
a team (403 `mfa_enrollment_required`, decided here). The scope is enforced in gateway/auth.py."""

from __future__ import annotations

from deelrx.identity.v1 import identity_pb2
from deelrx_kit.errors import DomainError


def enrollment_required(team: identity_pb2.Team | None, user: identity_pb2.User) -> bool:
    return bool(team is not None and team.settings.mfa_required and not user.mfa_enabled)


def check_team_switch(team: identity_pb2.Team, user: identity_pb2.User) -> None:
    """For /v1/auth/switch-team: refuse a team whose policy the user does not meet yet."""
    if enrollment_required(team, user):
        raise DomainError("mfa_enrollment_required", "This team requires two-factor authentication; enable it first.")


def check_can_require_mfa(actor: identity_pb2.User, turning_on: bool) -> None:
    """For PATCH /v1/teams/{tid}: whoever turns `mfa_required` on must have TOTP already, so the
    policy never locks its own author out (a clear 403 instead)."""
    if turning_on and not actor.mfa_enabled:
        raise DomainError(
            "mfa_enrollment_required",
            "Enable two-factor authentication on your own account before requiring it for the team.",
        )
