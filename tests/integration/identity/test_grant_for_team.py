"""GrantForTeam over gRPC on both databases: what a session switching into a team may do there,
the same policy a login's session gets, with the error codes the gateway maps."""

from __future__ import annotations

from deelrx.identity.v1 import identity_pb2 as pb
from tests.integration.harness import domain_error

from .conftest import Identity, call, ctx
from .test_account_security import enable_totp

UNKNOWN_TEAM = "tm_01aaaaaaaaaaaaaaaaaaaaaaaa"


async def _team(identity: Identity, owner: str, name: str) -> pb.Team:
    created = await call(identity.stub.CreateTeam, pb.CreateTeamRequest(context=ctx(), owner_user_id=owner, name=name))
    return created.team


async def test_the_grant_follows_the_teams_settings_and_mfa_policy(identity: Identity) -> None:
    owner = await identity.account("owner@example.com")
    member = await identity.account("member@example.com")
    team = await _team(identity, owner, "Acme")
    await call(
        identity.stub.UpdateTeam,
        pb.UpdateTeamRequest(
            team_id=team.id, session_idle_timeout_minutes=10, session_absolute_timeout_hours=3, mfa_required=True
        ),
    )
    ask = pb.GrantForTeamRequest(user_id=member, team_id=team.id)

    refused = await domain_error(identity.stub.GrantForTeam(ask))
    assert refused.code == "mfa_enrollment_required"

    await enable_totp(identity, member)
    granted = await call(identity.stub.GrantForTeam, ask)
    assert (granted.team.id, granted.team.name, granted.team.plan) == (team.id, "Acme", "starter")
    grant = granted.session_grant
    assert (grant.scope, grant.idle_timeout_minutes, grant.absolute_timeout_hours) == ("", 10, 3)
    # A read only: the member's next login still starts where it did (no active team yet).
    assert (await call(identity.stub.GetUser, pb.GetUserRequest(user_id=member))).user.last_active_team_id == ""


async def test_unknown_teams_and_users_are_not_found(identity: Identity) -> None:
    owner = await identity.account("owner@example.com")
    team = await _team(identity, owner, "Acme")
    for user_id, team_id in ((owner, UNKNOWN_TEAM), (owner, "tm_x"), (owner, ""), ("usr_missing", team.id)):
        error = await domain_error(identity.stub.GrantForTeam(pb.GrantForTeamRequest(user_id=user_id, team_id=team_id)))
        assert error.code == "not_found", (user_id, team_id)
