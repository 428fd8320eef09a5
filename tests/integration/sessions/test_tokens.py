"""Creating sessions, access tokens against the JWKS, refresh rotation and reuse detection."""

from __future__ import annotations

import asyncio
import json

import jwt

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2
from services.sessions.domain.access_token import verify
from tests.integration.harness import AuditTap, domain_error, eventually
from tests.integration.sessions.conftest import CHROME_MAC, FIREFOX_LINUX, Harness


async def _verify(service: Harness, token: str) -> dict:
    return verify(
        token,
        await service.jwks(),
        issuer=service.settings.public_url,
        audience=service.settings.jwt_audience,
        now=service.clock.now(),
    )


async def _by_type(tap: AuditTap, session_id: str, types: set[str]) -> dict[str, list[audit_pb2.AuditEvent]]:
    """The session's audit events by type, once every type in `types` arrived."""
    events = await eventually(
        lambda: [e for e in tap.events if e.session_id == session_id and e.type in types],
        lambda found: types <= {e.type for e in found},
        timeout=10,
    )
    by_type: dict[str, list[audit_pb2.AuditEvent]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)
    return by_type


async def test_created_session_token_verifies_with_contract_claims(service: Harness, audit_tap: AuditTap) -> None:
    created = await service.create(amr=("pwd", "otp"))
    claims = await _verify(service, created.tokens.access_token)
    s = created.session
    now = int(service.clock.now().timestamp())
    assert claims["iss"] == "https://auth.example.test"
    assert claims["aud"] == "deelrx"
    assert (claims["sub"], claims["sid"], claims["tid"]) == ("usr_alice", s.id, "tm_a")
    assert claims["typ"] == "access" and claims["amr"] == ["pwd", "otp"]
    assert claims["iat"] == claims["nbf"] == now and claims["auth_time"] == now
    assert claims["exp"] == now + 300 and created.tokens.expires_in == 300
    assert "scp" not in claims and claims["jti"]
    header = jwt.get_unverified_header(created.tokens.access_token)
    assert header["alg"] == "EdDSA" and header["kid"] in {k["kid"] for k in json.loads(await service.jwks())["keys"]}
    assert created.tokens.refresh_token.startswith("rt_") and len(created.tokens.refresh_token) >= 46
    assert s.id.startswith("ses_") and s.ip == "203.0.113.7" and s.scope == ""
    assert (s.device.browser, s.device.os, s.device.type, s.device.label) == (
        "Firefox",
        "Linux",
        "desktop",
        "Firefox on Linux",
    )
    assert created.new_device is True
    assert (await service.create()).new_device is False
    assert (await service.create(ua=CHROME_MAC)).new_device is True
    assert (await service.create(user_id="usr_bob")).new_device is True

    events = await _by_type(audit_tap, s.id, {"session.created"})
    event = events["session.created"][0]
    assert event.team_id == "tm_a" and event.actor.user_id == "usr_alice" and event.source == "sessions"
    details = dict(event.details)
    assert details["device"] == "Firefox on Linux" and details["new_device"] is True
    assert list(details["amr"]) == ["pwd", "otp"]
    assert created.tokens.refresh_token not in event.SerializeToString().decode(errors="ignore")


async def test_no_team_and_enrollment_scope(service: Harness) -> None:
    created = await service.create(team_id="", scope="mfa_enrollment")
    claims = await _verify(service, created.tokens.access_token)
    assert "tid" not in claims and claims["scp"] == "mfa_enrollment"
    refreshed = await service.refresh(created.tokens.refresh_token)
    assert (await _verify(service, refreshed.tokens.access_token))["scp"] == "mfa_enrollment"
    assert (await domain_error(service.create(scope="admin"))).code == "validation_error"
    assert (await domain_error(service.create(user_id=""))).code == "validation_error"
    assert (await domain_error(service.create(idle=-1))).code == "validation_error"


async def test_refresh_rotates_and_replay_in_grace_returns_same_successor(service: Harness) -> None:
    created = await service.create()
    r0 = created.tokens.refresh_token
    service.clock.advance(seconds=60)
    first = await service.refresh(r0)
    r1 = first.tokens.refresh_token
    assert r1 != r0
    assert first.session.ip == "203.0.113.8"
    assert first.session.last_seen_at.ToDatetime() > created.session.last_seen_at.ToDatetime()
    assert (await _verify(service, first.tokens.access_token))["sid"] == created.session.id

    service.clock.advance(seconds=5)
    replay = await service.refresh(r0)
    assert replay.tokens.refresh_token == r1  # the already-issued successor, not a new one
    assert replay.tokens.access_token != first.tokens.access_token

    r2 = (await service.refresh(r1)).tokens.refresh_token
    assert r2 not in (r0, r1)
    # r1's successor is in use now: presenting r0 again is reuse, even inside the grace.
    assert (await domain_error(service.refresh(r0))).code == "session_expired"
    assert (await domain_error(service.refresh(r2))).code == "session_expired"
    got = await service.stub.GetSession(sessions_pb2.GetSessionRequest(session_id=created.session.id))
    assert got.session.revoked is True


async def test_replay_after_grace_revokes_the_session(service: Harness, nats_client, audit_tap: AuditTap) -> None:
    revoked_feed = await nats_client.subscribe("sessions.revoked")
    created = await service.create()
    sid = created.session.id
    r1 = (await service.refresh(created.tokens.refresh_token)).tokens.refresh_token
    service.clock.advance(seconds=11)

    assert (await domain_error(service.refresh(created.tokens.refresh_token))).code == "session_expired"
    assert (await domain_error(service.refresh(r1))).code == "session_expired"
    got = await service.stub.GetSession(sessions_pb2.GetSessionRequest(session_id=sid))
    assert got.session.revoked is True

    events = await _by_type(audit_tap, sid, {"session.refresh_reuse_detected", "session.revoked"})
    assert events["session.refresh_reuse_detected"][0].outcome == "failure"
    assert dict(events["session.revoked"][0].details)["reason"] == "refresh_token_reuse"
    while True:
        notice = sessions_pb2.SessionRevoked.FromString((await revoked_feed.next_msg(timeout=10)).data)
        if sid in notice.session_ids:
            break
    assert notice.user_id == "usr_alice" and notice.reason == "refresh_token_reuse"


async def test_concurrent_refreshes_rotate_exactly_once(service: Harness) -> None:
    created = await service.create()
    results = await asyncio.gather(*(service.refresh(created.tokens.refresh_token) for _ in range(4)))
    successors = {r.tokens.refresh_token for r in results}
    assert len(successors) == 1
    (r1,) = successors
    assert r1 != created.tokens.refresh_token
    # The successor really is live and single-use: it rotates once, then its own successor works.
    second = await asyncio.gather(*(service.refresh(r1) for _ in range(2)))
    assert len({r.tokens.refresh_token for r in second}) == 1
    r2 = second[0].tokens.refresh_token
    assert (await service.refresh(r2)).tokens.refresh_token not in (r1, r2)
    got = await service.stub.GetSession(sessions_pb2.GetSessionRequest(session_id=created.session.id))
    assert got.session.revoked is False


async def test_unknown_and_malformed_refresh_tokens(service: Harness) -> None:
    assert (await domain_error(service.refresh(""))).code == "unauthenticated"
    assert (await domain_error(service.refresh("garbage"))).code == "unauthenticated"
    assert (await domain_error(service.refresh("rt_" + "A" * 43))).code == "unauthenticated"


async def test_key_rotation_keeps_old_kid_published(service: Harness) -> None:
    before = await service.create()
    old_kid = jwt.get_unverified_header(before.tokens.access_token)["kid"]
    rotated = await service.stub.RotateSigningKey(sessions_pb2.RotateSigningKeyRequest())
    assert rotated.kid and rotated.kid != old_kid

    after = await service.create()
    assert jwt.get_unverified_header(after.tokens.access_token)["kid"] == rotated.kid
    kids = [k["kid"] for k in json.loads(await service.jwks())["keys"]]
    assert kids == [rotated.kid, old_kid]
    for key in json.loads(await service.jwks())["keys"]:
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        assert "d" not in key
    await _verify(service, before.tokens.access_token)  # still verifies after rotation

    service.clock.advance(seconds=2 * service.settings.access_token_ttl_seconds - 1)
    assert old_kid in await service.jwks()
    service.clock.advance(seconds=2)
    assert old_kid not in await service.jwks()
    assert rotated.kid in await service.jwks()


async def test_signing_keys_survive_a_restart(service: Harness) -> None:
    from services.sessions.main import bootstrap

    created = await service.create()
    jwks = await service.jwks()
    other = bootstrap(service.settings, grpc_port=0, clock=service.clock)
    await other.start()
    try:
        from deelrx.sessions.v1 import sessions_pb2_grpc
        from deelrx_kit.grpc_server import channel

        async with channel(f"127.0.0.1:{other.grpc.port}") as chan:
            stub = sessions_pb2_grpc.SessionsServiceStub(chan)
            assert (await stub.GetJwks(sessions_pb2.GetJwksRequest())).jwks_json == jwks
            refreshed = await stub.Refresh(sessions_pb2.RefreshRequest(refresh_token=created.tokens.refresh_token))
        assert (await _verify(service, refreshed.tokens.access_token))["sid"] == created.session.id
    finally:
        await other.stop()


async def test_replay_inside_the_grace_interval_is_audited_with_device_and_ip(
    service: Harness, audit_tap: AuditTap
) -> None:
    created = await service.create(ua=FIREFOX_LINUX, ip="203.0.113.7")
    sid, r0 = created.session.id, created.tokens.refresh_token
    first = await service.refresh(r0, ip="203.0.113.8")
    service.clock.advance(seconds=3)
    replay = await service.stub.Refresh(
        sessions_pb2.RefreshRequest(
            context=common_pb2.RequestContext(client_ip="198.51.100.66", user_agent=CHROME_MAC), refresh_token=r0
        )
    )
    assert replay.tokens.refresh_token == first.tokens.refresh_token
    events = await _by_type(audit_tap, sid, {"session.refresh_replayed_in_grace"})
    [event] = events["session.refresh_replayed_in_grace"]
    details = dict(event.details)
    assert details["ip"] == "198.51.100.66" and event.actor.ip == "198.51.100.66"
    assert "Chrome" in details["device"] and "Firefox" in details["session_device"]
    assert details["session_ip"] == "203.0.113.8" and event.actor.user_id == "usr_alice"
