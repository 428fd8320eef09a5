"""Teams as identity keeps them (name, plan, settings) and the active team at login."""

from __future__ import annotations

from deelrx.identity.v1 import identity_pb2 as pb
from tests.integration.harness import domain_error

from .conftest import Identity, call, ctx


async def test_create_team_then_login_starts_in_it(identity: Identity) -> None:
    user_id = await identity.account("owner@example.com")
    team = (
        await call(identity.stub.CreateTeam, pb.CreateTeamRequest(context=ctx(), owner_user_id=user_id, name=" Acme "))
    ).team
    assert team.id.startswith("tm_") and team.name == "Acme" and team.plan == "starter"
    assert team.settings.session_idle_timeout_minutes == 30
    assert team.settings.session_absolute_timeout_hours == 12
    assert not team.settings.mfa_required

    login = await identity.login("owner@example.com")
    assert login.active_team.id == team.id and login.active_team.settings.session_idle_timeout_minutes == 30

    other = (await call(identity.stub.CreateTeam, pb.CreateTeamRequest(owner_user_id=user_id, name="Beta"))).team
    assert (await identity.login("owner@example.com")).active_team.id == team.id  # creating does not switch
    switched = await call(identity.stub.SetActiveTeam, pb.SetActiveTeamRequest(user_id=user_id, team_id=other.id))
    assert switched.team.name == "Beta"
    assert (await identity.login("owner@example.com")).active_team.id == other.id
    assert (await call(identity.stub.GetUser, pb.GetUserRequest(user_id=user_id))).user.last_active_team_id == other.id

    found = await call(identity.stub.GetTeams, pb.GetTeamsRequest(team_ids=[other.id, "tm_nope", team.id, other.id]))
    assert [t.id for t in found.teams] == [other.id, team.id]


async def test_team_and_user_errors(identity: Identity) -> None:
    user_id = await identity.account("solo@example.com")
    assert (await domain_error(identity.stub.GetUser(pb.GetUserRequest(user_id="usr_missing")))).code == "not_found"
    missing_team = pb.SetActiveTeamRequest(user_id=user_id, team_id="tm_01aaaaaaaaaaaaaaaaaaaaaaaa")
    assert (await domain_error(identity.stub.SetActiveTeam(missing_team))).code == "not_found"
    bad_name = pb.CreateTeamRequest(owner_user_id=user_id, name="x" * 101)
    assert (await domain_error(identity.stub.CreateTeam(bad_name))).code == "validation_error"
    no_owner = pb.CreateTeamRequest(owner_user_id="usr_missing", name="Ghost Inc")
    assert (await domain_error(identity.stub.CreateTeam(no_owner))).code == "not_found"
    # Bad input is a validation error, never INTERNAL.
    no_plan = pb.UpdateBillingRequest(team_id="tm_01aaaaaaaaaaaaaaaaaaaaaaaa")
    assert (await domain_error(identity.stub.UpdateBilling(no_plan))).code == "validation_error"
