"""Idle and absolute expiry, team switches and step-up never extending a session."""

from __future__ import annotations

from datetime import timedelta

from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2
from services.sessions.domain.access_token import verify
from tests.integration.harness import domain_error
from tests.integration.sessions.conftest import Harness


async def test_idle_timeout_ends_the_session(service: Harness) -> None:
    created = await service.create(idle=10)  # the team is stricter than the 30 min default
    assert created.session.idle_expires_at.ToDatetime() - created.session.created_at.ToDatetime() == timedelta(
        minutes=10
    )
    service.clock.advance(minutes=9)
    token = (await service.refresh(created.tokens.refresh_token)).tokens.refresh_token
    service.clock.advance(minutes=9)  # 18 min after creation, 9 after the last activity
    token = (await service.refresh(token)).tokens.refresh_token
    service.clock.advance(minutes=10)
    assert (await domain_error(service.refresh(token))).code == "session_expired"
    got = (await service.stub.GetSession(sessions_pb2.GetSessionRequest(session_id=created.session.id))).session
    assert got.revoked is False  # expired, not revoked: its times tell the caller
    listed = await service.stub.ListSessions(sessions_pb2.ListSessionsRequest(user_id="usr_alice"))
    assert created.session.id not in [s.id for s in listed.sessions]


async def test_absolute_timeout_is_never_extended_by_activity(service: Harness) -> None:
    created = await service.create(absolute=1)
    expires = created.session.expires_at.ToDatetime()
    assert expires - created.session.created_at.ToDatetime() == timedelta(hours=1)
    token = created.tokens.refresh_token
    for _ in range(2):
        service.clock.advance(minutes=29)
        refreshed = await service.refresh(token)
        token = refreshed.tokens.refresh_token
        assert refreshed.session.expires_at.ToDatetime() == expires
    # 58 minutes in: the access token stops at the session's end, not 5 minutes later.
    assert refreshed.tokens.access_expires_at.ToDatetime() == expires
    assert refreshed.tokens.expires_in == 120
    assert refreshed.session.idle_expires_at.ToDatetime() == expires
    service.clock.advance(minutes=2)
    assert (await domain_error(service.refresh(token))).code == "session_expired"


async def test_switch_team_and_step_up_never_extend(service: Harness) -> None:
    created = await service.create(team_id="tm_a")
    sid = created.session.id
    expires = created.session.expires_at.ToDatetime()
    service.clock.advance(minutes=20)
    ctx = common_pb2.RequestContext(user_id="usr_alice", session_id=sid)

    switched = await service.stub.SwitchTeam(
        sessions_pb2.SwitchTeamRequest(
            context=ctx,
            session_id=sid,
            team_id="tm_b",
            policy=sessions_pb2.SessionPolicy(idle_timeout_minutes=15, absolute_timeout_hours=2),
        )
    )
    assert switched.session.team_id == "tm_b"
    assert switched.session.expires_at.ToDatetime() == created.session.created_at.ToDatetime() + timedelta(hours=2)
    now = service.clock.now().replace(tzinfo=None)
    assert switched.session.idle_expires_at.ToDatetime() == now + timedelta(minutes=15)
    claims = verify(
        switched.tokens.access_token,
        await service.jwks(),
        issuer=service.settings.public_url,
        audience="deelrx",
        now=service.clock.now(),
    )
    assert claims["tid"] == "tm_b"

    back = await service.stub.SwitchTeam(sessions_pb2.SwitchTeamRequest(context=ctx, session_id=sid, team_id="tm_a"))
    assert back.session.expires_at.ToDatetime() == switched.session.expires_at.ToDatetime() < expires

    service.clock.advance(minutes=5)
    stepped = await service.stub.MarkReauthenticated(
        sessions_pb2.MarkReauthenticatedRequest(context=ctx, session_id=sid, amr=["pwd", "otp"])
    )
    assert list(stepped.session.amr) == ["pwd", "otp"]
    assert stepped.session.auth_time.ToDatetime() == service.clock.now().replace(tzinfo=None)
    assert stepped.session.expires_at.ToDatetime() == back.session.expires_at.ToDatetime()
    claims = verify(
        stepped.tokens.access_token,
        await service.jwks(),
        issuer=service.settings.public_url,
        audience="deelrx",
        now=service.clock.now(),
    )
    assert claims["amr"] == ["pwd", "otp"] and claims["auth_time"] == int(service.clock.now().timestamp())
    assert claims["tid"] == "tm_a"
    # The newest refresh token works; the one replaced by the step-up is past its grace now.
    await service.refresh(stepped.tokens.refresh_token)
    service.clock.advance(seconds=31)
    assert (await domain_error(service.refresh(back.tokens.refresh_token))).code == "session_expired"


async def test_switching_into_a_team_whose_limit_has_passed_ends_it(service: Harness) -> None:
    created = await service.create(team_id="tm_a")
    token = created.tokens.refresh_token
    for _ in range(3):
        service.clock.advance(minutes=21)  # activity keeps it from idling out
        token = (await service.refresh(token)).tokens.refresh_token
    error = await domain_error(
        service.stub.SwitchTeam(
            sessions_pb2.SwitchTeamRequest(
                session_id=created.session.id,
                team_id="tm_b",
                policy=sessions_pb2.SessionPolicy(absolute_timeout_hours=1),
            )
        )
    )
    assert error.code == "session_expired"
    missing = await domain_error(
        service.stub.SwitchTeam(sessions_pb2.SwitchTeamRequest(session_id="ses_x", team_id="tm_b"))
    )
    assert missing.code == "not_found"
