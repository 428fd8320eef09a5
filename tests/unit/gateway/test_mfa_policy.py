from __future__ import annotations

import pytest

from deelrx.identity.v1 import identity_pb2
from deelrx_kit.errors import DomainError
from gateway.mfa_policy import check_can_require_mfa, check_team_switch, enrollment_required


def _team(required: bool) -> identity_pb2.Team:
    return identity_pb2.Team(id="tm_1", settings=identity_pb2.TeamSettings(mfa_required=required))


def test_enrollment_is_required_only_by_a_requiring_team_without_totp() -> None:
    with_totp, without = identity_pb2.User(mfa_enabled=True), identity_pb2.User(mfa_enabled=False)
    assert enrollment_required(_team(True), without)
    assert not enrollment_required(_team(True), with_totp)
    assert not enrollment_required(_team(False), without)
    assert not enrollment_required(None, without)
    with pytest.raises(DomainError) as refused:
        check_team_switch(_team(True), without)
    assert refused.value.code == "mfa_enrollment_required" and refused.value.http_status == 403
    check_team_switch(_team(True), with_totp)


def test_turning_the_policy_on_needs_totp_on_the_author() -> None:
    with pytest.raises(DomainError) as refused:
        check_can_require_mfa(identity_pb2.User(mfa_enabled=False), turning_on=True)
    assert refused.value.code == "mfa_enrollment_required"
    check_can_require_mfa(identity_pb2.User(mfa_enabled=True), turning_on=True)
    check_can_require_mfa(identity_pb2.User(mfa_enabled=False), turning_on=False)
