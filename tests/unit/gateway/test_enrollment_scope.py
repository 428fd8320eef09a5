"""An enrollment-only session reaches exactly the routes docs/api.md lists, not look-alikes."""

from __future__ import annotations

import pytest

from gateway.auth import enrollment_allows


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/v1/mfa"),
        ("POST", "/v1/mfa/totp/enroll"),
        ("POST", "/v1/mfa/totp/confirm"),
        ("DELETE", "/v1/mfa/totp"),
        ("POST", "/v1/mfa/recovery-codes"),
        ("GET", "/v1/auth/me"),
        ("POST", "/v1/auth/logout"),
    ],
)
def test_enrollment_session_may_use_the_mfa_routes_me_and_logout(method: str, template: str) -> None:
    assert enrollment_allows(method, template)


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/v1/auth/members"),
        ("GET", "/v1/auth/me/export"),
        ("POST", "/v1/auth/logout-everywhere"),
        ("GET", "/v1/mfa-admin"),
        ("GET", "/v1/mfa/{anything}"),
        ("GET", "/v1/auth/verify"),
        ("POST", "/v1/teams"),
        ("DELETE", "/v1/auth/me"),
        ("GET", None),
    ],
)
def test_enrollment_session_is_refused_on_routes_that_only_share_a_prefix(method: str, template: str | None) -> None:
    assert not enrollment_allows(method, template)
