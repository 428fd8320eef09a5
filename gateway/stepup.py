"""Step-up: sensitive actions need an authentication at most 10 minutes old, with `otp` in
`amr` when the user has TOTP on; otherwise 401 `reauthentication_required`, answered before
anything changes. `/v1/auth/reauthenticate` renews it.

Used by the step-up list: TOTP enroll and delete, recovery-code regeneration, password change,
billing PUT, roles PUT, ownership transfer, revoking another member's sessions, audit export.
"""

from __future__ import annotations

import time

from fastapi import Request

from deelrx.identity.v1 import identity_pb2
from deelrx_kit.errors import DomainError
from gateway.auth import AuthContext
from gateway.clients import call
from gateway.state import gateway_of

STEP_UP_MAX_AGE_SECONDS = 600
# A little clock skew between the sessions service and this gateway is tolerated.
_FUTURE_SKEW_SECONDS = 60


async def require_step_up(request: Request, auth: AuthContext) -> None:
    age = time.time() - auth.claims.auth_time
    if age > STEP_UP_MAX_AGE_SECONDS or age < -_FUTURE_SKEW_SECONDS:
        raise DomainError("reauthentication_required", "Confirm your password to continue (reauthenticate).")
    if "otp" in auth.claims.amr:
        return
    gw = gateway_of(request)
    user = await call(gw.clients.identity.GetUser, identity_pb2.GetUserRequest(user_id=auth.user_id))
    if user.user.mfa_enabled:
        raise DomainError("reauthentication_required", "Confirm your password and a two-factor code to continue.")
