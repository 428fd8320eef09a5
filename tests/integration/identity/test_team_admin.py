"""Team settings, billing and invitations as identity keeps them (authorization is the caller's)."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote

from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2 as pb
from tests.integration.harness import domain_error

from .conftest import PUBLIC_URL, Identity, call, ctx

INVITE_RE = re.compile(r"/accept-invite\?token=([A-Za-z0-9_\-%]+)")


def actor(user_id: str) -> common_pb2.RequestContext:
    context = ctx()
    context.user_id = user_id
    return context


async def _team(identity: Identity, owner: str) -> pb.Team:
    return (await call(identity.stub.CreateTeam, pb.CreateTeamRequest(owner_user_id=owner, name="Acme"))).team


async def _invite(identity: Identity, owner: str, team_id: str, address: str, role: str = "staff") -> tuple[str, str]:
    to = address.strip()
    before = len(await identity.mails_to(to, 0, 0))
    reply = await call(
        identity.stub.CreateInvitation,
        pb.CreateInvitationRequest(context=actor(owner), team_id=team_id, email=address, role=role),
    )
    mails = await identity.mails_to(to, before + 1)
    body = mails[-1].get_body(("plain",)).get_content()
    assert f"{PUBLIC_URL}/accept-invite?token=" in body
    match = INVITE_RE.search(body)
    assert match
    return reply.invitation.id, unquote(match.group(1))


async def test_settings_within_bounds_and_billing(identity: Identity, nats_client) -> None:
    owner = await identity.account("owner@example.com")
    team = await _team(identity, owner)
    sub = await nats_client.subscribe("teams.changed")
    updated = await call(
        identity.stub.UpdateTeam,
        pb.UpdateTeamRequest(
            context=actor(owner), team_id=team.id, name="Acme Rx", session_idle_timeout_minutes=10, mfa_required=True
        ),
    )
    assert updated.team.name == "Acme Rx" and updated.team.settings.session_idle_timeout_minutes == 10
    assert updated.team.settings.session_absolute_timeout_hours == 12 and updated.team.settings.mfa_required
    for field, value in (("session_idle_timeout_minutes", 31), ("session_absolute_timeout_hours", 0)):
        bad = pb.UpdateTeamRequest(team_id=team.id, **{field: value})
        error = await domain_error(identity.stub.UpdateTeam(bad))
        assert error.code == "validation_error" and error.violations[0].pointer == f"/settings/{field}"
    missing = await domain_error(identity.stub.UpdateTeam(pb.UpdateTeamRequest(team_id="tm_x", name="n")))
    assert missing.code == "not_found"

    billed = await call(
        identity.stub.UpdateBilling,
        pb.UpdateBillingRequest(team_id=team.id, plan="professional", billing_email="Pay@Example.com"),
    )
    assert billed.team.plan == "professional" and billed.team.billing_email == "Pay@example.com"
    bad_plan = await domain_error(identity.stub.UpdateBilling(pb.UpdateBillingRequest(team_id=team.id, plan="gold")))
    assert bad_plan.code == "validation_error"
    seen = set()
    for _ in range(2):
        msg = await sub.next_msg(timeout=10)
        notice = pb.TeamChanged.FromString(msg.data)
        seen.add((notice.team_id, notice.plan))
    assert (team.id, "professional") in seen


async def test_invitation_is_single_use_and_bound_to_the_address(identity: Identity) -> None:
    owner = await identity.account("owner@example.com")
    invitee = await identity.account("Invitee@Example.com")
    stranger = await identity.account("stranger@example.com")
    team = await _team(identity, owner)
    invitation_id, token = await _invite(identity, owner, team.id, " invitee@example.com ", "manager")

    listed = await call(identity.stub.ListInvitations, pb.ListInvitationsRequest(team_id=team.id))
    assert [i.id for i in listed.invitations] == [invitation_id]
    assert listed.invitations[0].role == "manager" and listed.invitations[0].invited_by == owner

    wrong_user = await domain_error(
        identity.stub.AcceptInvitation(pb.AcceptInvitationRequest(user_id=stranger, token=token))
    )
    assert wrong_user.code == "forbidden"
    accepted = await call(identity.stub.AcceptInvitation, pb.AcceptInvitationRequest(user_id=invitee, token=token))
    assert (accepted.team_id, accepted.role, accepted.invitation_id) == (team.id, "manager", invitation_id)
    # The same user again (a retry finishing the membership step) gets the same answer; others cannot.
    again = await call(identity.stub.AcceptInvitation, pb.AcceptInvitationRequest(user_id=invitee, token=token))
    assert again.invitation_id == invitation_id
    reused = await domain_error(
        identity.stub.AcceptInvitation(pb.AcceptInvitationRequest(user_id=stranger, token=token))
    )
    assert reused.code == "invalid_token"
    assert not (await call(identity.stub.ListInvitations, pb.ListInvitationsRequest(team_id=team.id))).invitations


async def test_reinvite_replaces_revoke_and_expiry(identity: Identity) -> None:
    owner = await identity.account("owner@example.com")
    invitee = await identity.account("bob@example.com")
    team = await _team(identity, owner)
    first_id, first = await _invite(identity, owner, team.id, "bob@example.com")
    second_id, second = await _invite(identity, owner, team.id, "BOB@example.com", "manager")
    listed = await call(identity.stub.ListInvitations, pb.ListInvitationsRequest(team_id=team.id))
    assert [i.id for i in listed.invitations] == [second_id]
    old = await domain_error(identity.stub.AcceptInvitation(pb.AcceptInvitationRequest(user_id=invitee, token=first)))
    assert old.code == "invalid_token"

    await call(identity.stub.RevokeInvitation, pb.RevokeInvitationRequest(team_id=team.id, invitation_id=second_id))
    revoked = await domain_error(
        identity.stub.AcceptInvitation(pb.AcceptInvitationRequest(user_id=invitee, token=second))
    )
    assert revoked.code == "invalid_token"
    gone = await domain_error(
        identity.stub.RevokeInvitation(pb.RevokeInvitationRequest(team_id=team.id, invitation_id=first_id))
    )
    assert gone.code == "not_found"

    _, third = await _invite(identity, owner, team.id, "bob@example.com")
    identity.clock.advance(days=7, seconds=1)
    expired = await domain_error(
        identity.stub.AcceptInvitation(pb.AcceptInvitationRequest(user_id=invitee, token=third))
    )
    assert expired.code == "invalid_token"


async def test_concurrent_accepts_use_the_invitation_once(identity: Identity) -> None:
    owner = await identity.account("owner@example.com")
    invitee = await identity.account("carol@example.com")
    team = await _team(identity, owner)
    _, token = await _invite(identity, owner, team.id, "carol@example.com")
    request = pb.AcceptInvitationRequest(user_id=invitee, token=token)
    results = await asyncio.gather(*(identity.stub.AcceptInvitation(request) for _ in range(5)), return_exceptions=True)
    answers = [r for r in results if not isinstance(r, BaseException)]
    assert answers and {a.invitation_id for a in answers} == {answers[0].invitation_id}
