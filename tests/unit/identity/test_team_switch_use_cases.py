"""A session moving into another team over in-memory ports: the team's policy and timeouts, as
identity decides them for the gateway's /v1/auth/switch-team."""

from __future__ import annotations

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from services.identity.domain import totp
from services.identity.domain.session_grant import SessionGrant
from tests.unit.identity.fakes import World, make_world

PASSWORD = "velvet-thunder-orchard-42"
CTX = common_pb2.RequestContext(client_ip="198.51.100.7", user_agent="unit")
UNKNOWN_TEAM = "tm_01aaaaaaaaaaaaaaaaaaaaaaaa"


@pytest.fixture
async def world() -> World:
    return make_world()


async def _account(world: World, email: str) -> str:
    await world.app.signup.start(email, PASSWORD, email.split("@")[0])
    return await world.app.signup.verify_email(world.link_token(email))


async def _enable_totp(world: World, user_id: str) -> None:
    start = await world.app.mfa.enroll(user_id, CTX)
    await world.app.mfa.confirm(user_id, totp.code_at(start.secret, totp.time_step(world.clock.now())), CTX)


async def _refusal(world: World, user_id: str, team_id: str) -> DomainError:
    with pytest.raises(DomainError) as refused:
        await world.app.team_switch.grant(user_id, team_id)
    return refused.value


async def test_the_grant_carries_the_teams_current_timeouts(world: World) -> None:
    owner = await _account(world, "ada@example.com")
    team = await world.app.teams.create_team(owner, "Engines")
    await world.app.teams.update_team(None, team.id, idle_minutes=15, absolute_hours=4)

    found = await world.app.team_switch.grant(owner, team.id)

    assert found.team.id == team.id and found.team.name == "Engines"
    assert found.grant == SessionGrant("", 15, 4)


async def test_a_team_requiring_mfa_refuses_a_member_without_totp_until_they_enroll(world: World) -> None:
    owner = await _account(world, "ada@example.com")
    member = await _account(world, "grace@example.com")
    team = await world.app.teams.create_team(owner, "Engines")
    await world.app.teams.update_team(None, team.id, mfa_required=True)

    refused = await _refusal(world, member, team.id)
    assert refused.code == "mfa_enrollment_required" and refused.http_status == 403

    await _enable_totp(world, member)
    found = await world.app.team_switch.grant(member, team.id)
    assert found.grant == SessionGrant("", 30, 12) and not found.grant.enrollment_only


async def test_an_unknown_team_or_user_is_not_found_and_nothing_is_written(world: World) -> None:
    owner = await _account(world, "ada@example.com")
    team = await world.app.teams.create_team(owner, "Engines")
    other = await world.app.teams.create_team(owner, "Second")
    events_before = len(world.memory.events)

    for team_id in (UNKNOWN_TEAM, "", "usr_not_a_team"):
        assert (await _refusal(world, owner, team_id)).code == "not_found"
    assert (await _refusal(world, "usr_01aaaaaaaaaaaaaaaaaaaaaaaa", team.id)).code == "not_found"
    assert (await _refusal(world, "", team.id)).code == "not_found"

    # Asking for a grant is a read: the active team moves only with SetActiveTeam, after the switch.
    await world.app.team_switch.grant(owner, other.id)
    assert (await world.app.profile.get_user(owner)).last_active_team_id == team.id
    assert len(world.memory.events) == events_before
