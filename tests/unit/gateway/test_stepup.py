"""Step-up: a last authentication at most 10 minutes old."""

from __future__ import annotations

import time

import pytest

from deelrx_kit.errors import DomainError
from gateway.auth import AuthContext
from gateway.stepup import require_step_up
from gateway.tokens import AccessClaims


def _auth(age_seconds: float) -> AuthContext:
    now = int(time.time())
    # With `otp` in amr the age alone decides (no question to identity).
    claims = AccessClaims("usr_a", "ses_a", "tm_a", ("pwd", "otp"), int(now - age_seconds), now + 300, None)
    return AuthContext(claims, "bearer")


async def test_recent_login_passes() -> None:
    await require_step_up(None, _auth(60))  # type: ignore[arg-type]
    await require_step_up(None, _auth(590))  # type: ignore[arg-type]


@pytest.mark.parametrize("age", [610, 3600, 86400])
async def test_old_login_needs_reauthentication(age: float) -> None:
    with pytest.raises(DomainError) as info:
        await require_step_up(None, _auth(age))  # type: ignore[arg-type]
    assert info.value.code == "reauthentication_required" and info.value.http_status == 401
