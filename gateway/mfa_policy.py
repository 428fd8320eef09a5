"""Team `mfa_required`: what it means for a member's session (an enrollment-only session at
login, a refused switch into the team) is identity's decision (its session grant); the scope is
enforced in gateway/auth.py. What stays here is the rule for whoever turns the policy on."""

from __future__ import annotations

from deelrx.identity.v1 import identity_pb2
from deelrx_kit.errors import DomainError


def check_can_require_mfa(actor: identity_pb2.User, turning_on: bool) -> None:
    """For PATCH /v1/teams/{tid}: whoever turns `mfa_required` on must have TOTP already, so the
    policy never locks its own author out (a clear 403 instead)."""
    if turning_on and not actor.mfa_enabled:
        raise DomainError(
            "mfa_enrollment_required",
            "Enable two-factor authentication on your own account before requiring it for the team.",
        )
