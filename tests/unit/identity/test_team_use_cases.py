"""Teams and invitations over in-memory ports: creation, reads, single-use invitations bound to
the invited address."""

from __future__ import annotations

import pytest

from deelrx.common.v1 import common_pb2
from deelrx_kit.errors import DomainError
from deelrx_kit.nats_bus import TEAM_CHANGED_SUBJECT
from tests.unit.identity.fakes import World, make_world

PASSWORD = "velvet-thunder-orchard-42"


async def _account(world: World, email: str, name: str) -> str:
    await world.app.signup.start(email, PASSWORD, name)
    return await world.app.signup.verify_email(world.link_token(email))


@pytest.fixture
async def world() -> World:
    return make_world()


async def test_a_new_team_becomes_its_creators_first_active_team(world: World) -> None:
    owner = await _account(world, "ada@example.com", "Ada")

    first = await world.app.teams.create_team(owner, "  Analytical Engines ")
    await world.app.teams.create_team(owner, "Second")

    assert first.name == "Analytical Engines" and first.plan == "starter"
    assert (await world.app.profile.get_user(owner)).last_active_team_id == first.id
    assert next(e.target.id for e in world.events_of("team.created")) == first.id


async def test_get_teams_answers_in_the_order_asked_without_unknown_ids(world: World) -> None:
    owner = await _account(world, "ada@example.com", "Ada")
    a = await world.app.teams.create_team(owner, "A")
    b = await world.app.teams.create_team(owner, "B")

    found = await world.app.teams.get_teams([b.id, "tm_unknown", a.id, b.id, "usr_not_a_team"])

    assert [t.id for t in found] == [b.id, a.id]
    with pytest.raises(DomainError) as too_many:
        await world.app.teams.get_teams([a.id] * 201)
    assert too_many.value.code == "validation_error"


async def test_a_settings_change_is_announced_to_the_gateways(world: World) -> None:
    owner = await _account(world, "ada@example.com", "Ada")
    team = await world.app.teams.create_team(owner, "A")

    updated = await world.app.teams.update_team(None, team.id, idle_minutes=15, mfa_required=True)

    assert (updated.settings.session_idle_timeout_minutes, updated.settings.mfa_required) == (15, True)
    assert [s for s, _ in world.memory.events if s == TEAM_CHANGED_SUBJECT] == [TEAM_CHANGED_SUBJECT]


async def test_an_invitation_is_accepted_once_by_its_address(world: World) -> None:
    owner = await _account(world, "ada@example.com", "Ada")
    team = await world.app.teams.create_team(owner, "Engines")
    grace = await _account(world, "grace@example.com", "Grace")
    mallory = await _account(world, "mallory@example.com", "Mallory")
    inviter = common_pb2.RequestContext(user_id=owner)

    invitation = await world.app.invitations.create(inviter, team.id, "Grace@Example.com", "staff")
    token = world.link_token("grace@example.com")

    with pytest.raises(DomainError) as other_address:
        await world.app.invitations.accept(None, mallory, token)
    assert other_address.value.code == "forbidden"
    accepted = await world.app.invitations.accept(None, grace, token)
    assert (accepted.invitation_id, accepted.team_id, accepted.role, accepted.first_use) == (
        invitation.id,
        team.id,
        "staff",
        True,
    )
    # The same user retrying (the membership step failed) gets the same answer, not a second use.
    assert not (await world.app.invitations.accept(None, grace, token)).first_use
    with pytest.raises(DomainError) as spent:
        await world.app.invitations.accept(None, mallory, token)
    assert spent.value.code in {"invalid_token", "forbidden"}
    assert await world.app.invitations.list_pending(team.id, 0, "") == ([], "")


async def test_re_inviting_revokes_the_earlier_link(world: World) -> None:
    owner = await _account(world, "ada@example.com", "Ada")
    team = await world.app.teams.create_team(owner, "Engines")
    grace = await _account(world, "grace@example.com", "Grace")
    inviter = common_pb2.RequestContext(user_id=owner)
    await world.app.invitations.create(inviter, team.id, "grace@example.com", "staff")
    first = world.link_token("grace@example.com")
    second_invitation = await world.app.invitations.create(inviter, team.id, "grace@example.com", "manager")

    with pytest.raises(DomainError) as revoked:
        await world.app.invitations.accept(None, grace, first)
    assert revoked.value.code == "invalid_token"
    pending, _ = await world.app.invitations.list_pending(team.id, 0, "")
    assert [i.id for i in pending] == [second_invitation.id]
