"""Revocation: SQL, the NATS feed, the Redis fallback keys, ownership checks, bulk revocation."""

from __future__ import annotations

import redis.asyncio as redis

from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.audit_partitions import type_filter
from tests.integration.sessions.conftest import Harness, fails


def _ctx(user_id: str = "usr_alice") -> common_pb2.RequestContext:
    return common_pb2.RequestContext(request_id="req_2", user_id=user_id, client_ip="198.51.100.1")


async def test_revoke_publishes_on_nats_and_sets_redis_key(service: Harness, nats_client, redis_url: str) -> None:
    feed = await nats_client.subscribe("sessions.revoked")
    audit = await nats_client.subscribe(type_filter("auth.logout"))
    created = await service.create()
    sid = created.session.id
    await service.stub.RevokeSession(
        sessions_pb2.RevokeSessionRequest(context=_ctx(), session_id=sid, user_id="usr_alice", reason="logout")
    )
    while True:
        notice = sessions_pb2.SessionRevoked.FromString((await feed.next_msg(timeout=10)).data)
        if sid in notice.session_ids:
            break
    assert notice.user_id == "usr_alice" and notice.reason == "logout" and notice.revoked_at.seconds > 0

    client = redis.from_url(redis_url)
    try:
        assert await client.get(f"deelrx:revoked:{sid}") is not None
        ttl = await client.ttl(f"deelrx:revoked:{sid}")
        assert 0 < ttl <= service.settings.access_token_ttl_seconds + 60
    finally:
        await client.aclose()

    recent = await service.stub.ListRecentRevocations(sessions_pb2.ListRecentRevocationsRequest())
    assert sid in recent.session_ids
    assert (await fails(service.refresh(created.tokens.refresh_token))).code == "session_expired"
    got = (await service.stub.GetSession(sessions_pb2.GetSessionRequest(session_id=sid))).session
    assert got.revoked is True
    listed = await service.stub.ListSessions(sessions_pb2.ListSessionsRequest(user_id="usr_alice"))
    assert sid not in [s.id for s in listed.sessions]
    while True:
        from deelrx.audit.v1 import audit_pb2

        event = audit_pb2.AuditEvent.FromString((await audit.next_msg(timeout=10)).data)
        if event.session_id == sid:
            break
    assert event.team_id == "tm_a"

    # Old revocations leave the start-up list once their tokens cannot be alive any more.
    service.clock.advance(seconds=service.settings.access_token_ttl_seconds + 61)
    recent = await service.stub.ListRecentRevocations(sessions_pb2.ListRecentRevocationsRequest())
    assert sid not in recent.session_ids


async def test_revoking_another_users_session_is_not_found(service: Harness) -> None:
    bobs = await service.create(user_id="usr_bob")
    error = await fails(
        service.stub.RevokeSession(
            sessions_pb2.RevokeSessionRequest(context=_ctx(), session_id=bobs.session.id, user_id="usr_alice")
        )
    )
    assert error.code == "not_found"
    unknown = await fails(
        service.stub.RevokeSession(
            sessions_pb2.RevokeSessionRequest(context=_ctx(), session_id="ses_nope", user_id="usr_alice")
        )
    )
    assert unknown.code == "not_found"
    # Bob's session is untouched and still refreshes.
    await service.refresh(bobs.tokens.refresh_token)
    missing = await fails(service.stub.GetSession(sessions_pb2.GetSessionRequest(session_id="ses_nope")))
    assert missing.code == "not_found"


async def test_revoke_sessions_by_team_and_except_one(service: Harness) -> None:
    keep = await service.create(team_id="tm_a")
    other_a = await service.create(team_id="tm_a")
    in_b = await service.create(team_id="tm_b")
    bobs = await service.create(user_id="usr_bob", team_id="tm_a")

    listed = await service.stub.ListSessions(sessions_pb2.ListSessionsRequest(user_id="usr_alice"))
    assert [s.id for s in listed.sessions] == [in_b.session.id, other_a.session.id, keep.session.id]
    only_a = await service.stub.ListSessions(sessions_pb2.ListSessionsRequest(user_id="usr_alice", team_id="tm_a"))
    assert [s.id for s in only_a.sessions] == [other_a.session.id, keep.session.id]

    answer = await service.stub.RevokeSessions(
        sessions_pb2.RevokeSessionsRequest(
            context=_ctx(), user_id="usr_alice", team_id="tm_a", except_session_id=keep.session.id, reason="admin"
        )
    )
    assert answer.revoked == 1
    listed = await service.stub.ListSessions(sessions_pb2.ListSessionsRequest(user_id="usr_alice"))
    assert [s.id for s in listed.sessions] == [in_b.session.id, keep.session.id]

    answer = await service.stub.RevokeSessions(
        sessions_pb2.RevokeSessionsRequest(context=_ctx(), user_id="usr_alice", reason="password_reset")
    )
    assert answer.revoked == 2
    assert not (await service.stub.ListSessions(sessions_pb2.ListSessionsRequest(user_id="usr_alice"))).sessions
    for gone in (keep, other_a, in_b):
        assert (await fails(service.refresh(gone.tokens.refresh_token))).code == "session_expired"
    await service.refresh(bobs.tokens.refresh_token)
    again = await service.stub.RevokeSessions(sessions_pb2.RevokeSessionsRequest(context=_ctx(), user_id="usr_alice"))
    assert again.revoked == 0


async def test_sessions_sends_revocation_heartbeats_through_its_outbox(service, nats_client) -> None:
    feed = await nats_client.subscribe("sessions.revoked")
    while True:
        notice = sessions_pb2.SessionRevoked.FromString((await feed.next_msg(timeout=15)).data)
        if notice.heartbeat_from:
            break
    assert notice.session_ids == [] and notice.reason == "heartbeat"
    assert notice.heartbeat_from.startswith("rep_")


async def test_touch_writes_last_seen_at_most_once_a_minute(service: Harness) -> None:
    created = await service.create()
    sid = created.session.id
    touch = sessions_pb2.TouchSessionsRequest(session_ids=[sid, sid, "ses_unknown", "x" * 500])
    assert (await service.stub.TouchSessions(touch)).touched == 0  # created this very second
    service.clock.advance(seconds=61)
    # Several gateways report the same session in the same minute: one write.
    replies = [await service.stub.TouchSessions(touch) for _ in range(3)]
    assert [r.touched for r in replies] == [1, 0, 0]
    seen = (await service.stub.GetSession(sessions_pb2.GetSessionRequest(session_id=sid))).session.last_seen_at
    assert seen.seconds == int(service.clock.now().timestamp())
    service.clock.advance(seconds=30)
    assert (await service.stub.TouchSessions(touch)).touched == 0
    await service.stub.RevokeSession(sessions_pb2.RevokeSessionRequest(context=_ctx(), session_id=sid))
    service.clock.advance(seconds=61)
    assert (await service.stub.TouchSessions(touch)).touched == 0  # revoked sessions stay as they were
