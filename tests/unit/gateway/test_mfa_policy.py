from __future__ import annotations

import pytest

from deelrx.identity.v1 import identity_pb2
from deelrx_kit.errors import DomainError
from gateway.mfa_policy import check_can_require_mfa


def test_turning_the_policy_on_needs_totp_on_the_author() -> None:
    with pytest.raises(DomainError) as refused:
        check_can_require_mfa(identity_pb2.User(mfa_enabled=False), turning_on=True)
    assert refused.value.code == "mfa_enrollment_required"
    check_can_require_mfa(identity_pb2.User(mfa_enabled=True), turning_on=True)
    check_can_require_mfa(identity_pb2.User(mfa_enabled=False), turning_on=False)
