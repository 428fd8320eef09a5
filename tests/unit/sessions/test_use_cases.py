"""The sessions use cases over in-memory fakes of their ports: issuing, refresh (rotation,
grace, reuse, idle and absolute expiry), revocation and listing. No servers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deelrx.common.v1 import common_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.errors import DomainError
from services.sessions.domain.refresh_tokens import hash_token
from services.sessions.tokens import IssuedSession
from tests.unit.sessions.fakes import World, world

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)


def ctx(ip: str = "203.0.113.7", ua: str = FIREFOX, user_id: str = "") -> common_pb2.RequestContext:
    return common_pb2.RequestContext(request_id="req_1", client_ip=ip, user_agent=ua, user_id=user_id)


async def login(w: World, user_id: str = "usr_alice", team_id: str = "tm_a", **kw: object) -> IssuedSession:
    args: dict[str, object] = {
        "user_id": user_id,
        "team_id": team_id,
        "amr": ["pwd"],
        "auth_time": None,
        "scope": "",
        "policy_idle_minutes": 0,
        "policy_absolute_hours": 0,
    }
    args.update(kw)
    return await w.issuing.start(ctx(), **args)  # type: ignore[arg-type]


async def fails(code: str, call: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code == code
    return caught.value


# -- issuing ------------------------------------------------------------------------------
async def test_a_login_stores_the_session_and_its_first_refresh_token() -> None:
    w = world()
    issued = await login(w)
    stored = w.store.sessions[issued.session.id]
    assert stored.user_id == "usr_alice" and stored.team_id == "tm_a"
    assert stored.expires_at == w.clock.now() + timedelta(hours=12)
    assert stored.idle_expires_at == w.clock.now() + timedelta(minutes=30)
    token = w.store.tokens[hash_token(issued.tokens.refresh_token)]
    assert (token.session_id, token.generation, token.rotated_at) == (stored.id, 0, None)
    assert [e.type for e in w.outbox.events()] == ["session.created", "session.new_device"]


async def test_a_second_login_from_the_same_device_is_not_new() -> None:
    w = world()
    await login(w)
    second = await login(w)
    assert not second.new_device
    assert [e.type for e in w.outbox.events()][-1] == "session.created"


async def test_the_team_policy_shortens_the_lifetime() -> None:
    w = world()
    issued = await login(w, policy_idle_minutes=5, policy_absolute_hours=1)
    assert issued.session.idle_expires_at == w.clock.now() + timedelta(minutes=5)
    assert issued.session.expires_at == w.clock.now() + timedelta(hours=1)


async def test_invalid_input_is_refused_and_nothing_is_stored() -> None:
    w = world()
    await fails("validation_error", login(w, user_id=""))
    await fails("validation_error", login(w, scope="admin"))
    await fails("validation_error", login(w, policy_idle_minutes=-1))
    assert not w.store.sessions and not w.outbox.messages


# -- refresh ------------------------------------------------------------------------------
async def test_refresh_rotates_the_token_and_moves_the_idle_deadline() -> None:
    w = world()
    issued = await login(w)
    w.clock.advance(minutes=10)
    renewed = await w.refresh.refresh(ctx(ip="203.0.113.8"), issued.tokens.refresh_token)
    assert renewed.tokens.refresh_token != issued.tokens.refresh_token
    old = w.store.tokens[hash_token(issued.tokens.refresh_token)]
    new = w.store.tokens[hash_token(renewed.tokens.refresh_token)]
    assert old.rotated_at == w.clock.now() and old.successor_hash == new.token_hash
    assert new.generation == 1 and new.rotated_at is None
    stored = w.store.sessions[issued.session.id]
    assert stored.idle_expires_at == w.clock.now() + timedelta(minutes=30)
    assert stored.ip == "203.0.113.8"
    assert w.outbox.events()[-1].type == "session.refreshed"


async def test_a_replay_inside_the_grace_gets_the_same_successor_and_is_recorded() -> None:
    w = world()
    issued = await login(w)
    first = await w.refresh.refresh(ctx(), issued.tokens.refresh_token)
    w.clock.advance(seconds=10)
    again = await w.refresh.refresh(ctx(ip="198.51.100.9", ua=CHROME_MAC), issued.tokens.refresh_token)
    assert again.tokens.refresh_token == first.tokens.refresh_token
    replayed = w.outbox.events("session.refresh_replayed_in_grace")
    assert len(replayed) == 1
    details = dict(replayed[0].details)
    assert details["ip"] == "198.51.100.9" and details["session_ip"] == "203.0.113.7"
    assert "Chrome" in details["device"] and "Firefox" in details["session_device"]
    assert first.tokens.refresh_token not in str(replayed[0])
    assert not w.store.sessions[issued.session.id].revoked


async def test_a_replay_after_the_grace_revokes_the_session() -> None:
    w = world()
    issued = await login(w)
    first = await w.refresh.refresh(ctx(), issued.tokens.refresh_token)
    w.clock.advance(seconds=11)
    await fails("session_expired", w.refresh.refresh(ctx(), issued.tokens.refresh_token))
    session = w.store.sessions[issued.session.id]
    assert session.revoked and session.revoke_reason == "refresh_token_reuse"
    assert [e.type for e in w.outbox.events()][-2:] == ["session.refresh_reuse_detected", "session.revoked"]
    assert w.revocations.staged[-1].session_ids == (session.id,)
    assert session.id in w.revocations.announced
    # The family is dead: the successor the thief or the owner holds no longer works either.
    await fails("session_expired", w.refresh.refresh(ctx(), first.tokens.refresh_token))


async def test_a_replay_after_the_successor_was_used_is_reuse_even_inside_the_grace() -> None:
    w = world()
    issued = await login(w)
    first = await w.refresh.refresh(ctx(), issued.tokens.refresh_token)
    await w.refresh.refresh(ctx(), first.tokens.refresh_token)
    await fails("session_expired", w.refresh.refresh(ctx(), issued.tokens.refresh_token))
    assert w.store.sessions[issued.session.id].revoke_reason == "refresh_token_reuse"


async def test_a_successor_sealed_under_another_secret_fails_closed_as_reuse() -> None:
    w = world()
    issued = await login(w)
    await w.refresh.refresh(ctx(), issued.tokens.refresh_token)
    token_hash = hash_token(issued.tokens.refresh_token)
    stored = w.store.tokens[token_hash]
    assert stored.successor_sealed is not None
    w.store.tokens[token_hash] = stored.__class__(**{**vars(stored), "successor_sealed": b"\x00" * 40})
    await fails("session_expired", w.refresh.refresh(ctx(), issued.tokens.refresh_token))
    assert w.store.sessions[issued.session.id].revoked


async def test_an_idle_session_cannot_be_refreshed_and_nothing_rotates() -> None:
    w = world()
    issued = await login(w)
    w.clock.advance(minutes=30)
    await fails("session_expired", w.refresh.refresh(ctx(), issued.tokens.refresh_token))
    assert w.store.tokens[hash_token(issued.tokens.refresh_token)].rotated_at is None
    assert not w.store.sessions[issued.session.id].revoked


async def test_activity_cannot_stretch_a_session_past_its_absolute_end() -> None:
    w = world()
    issued = await login(w)
    token = issued.tokens.refresh_token
    for _ in range(47):  # every 15 minutes for 11h45
        w.clock.advance(minutes=15)
        token = (await w.refresh.refresh(ctx(), token)).tokens.refresh_token
    assert w.store.sessions[issued.session.id].idle_expires_at == issued.session.expires_at
    w.clock.advance(minutes=15)
    await fails("session_expired", w.refresh.refresh(ctx(), token))


async def test_unknown_and_malformed_tokens_are_unauthenticated() -> None:
    w = world()
    await fails("unauthenticated", w.refresh.refresh(ctx(), "not-a-token"))
    await fails("unauthenticated", w.refresh.refresh(ctx(), "rt_" + "a" * 43))


async def test_a_revoked_session_cannot_be_refreshed() -> None:
    w = world()
    issued = await login(w)
    await w.revocation.revoke_one(ctx(), issued.session.id, "usr_alice", "logout")
    await fails("session_expired", w.refresh.refresh(ctx(), issued.tokens.refresh_token))


async def test_stale_successors_are_forgotten_after_the_grace() -> None:
    w = world()
    issued = await login(w)
    await w.refresh.refresh(ctx(), issued.tokens.refresh_token)
    assert await w.refresh.forget_stale_successors() == 0
    w.clock.advance(seconds=11)
    assert await w.refresh.forget_stale_successors() == 1
    assert w.store.tokens[hash_token(issued.tokens.refresh_token)].successor_sealed is None


# -- revocation ---------------------------------------------------------------------------
async def test_logout_revokes_one_session_and_tells_the_gateways() -> None:
    w = world()
    issued = await login(w)
    await w.revocation.revoke_one(ctx(), issued.session.id, "usr_alice", "logout")
    assert w.store.sessions[issued.session.id].revoke_reason == "logout"
    assert [e.type for e in w.outbox.events()][-2:] == ["session.revoked", "auth.logout"]
    assert w.revocations.staged[-1].session_ids == (issued.session.id,)
    assert w.revocations.announced == [issued.session.id]


async def test_another_users_session_is_not_found() -> None:
    w = world()
    issued = await login(w)
    await fails("not_found", w.revocation.revoke_one(ctx(), issued.session.id, "usr_mallory", "logout"))
    assert not w.store.sessions[issued.session.id].revoked


async def test_revoking_all_but_the_current_session() -> None:
    w = world()
    current, other, elsewhere = await login(w), await login(w), await login(w, team_id="tm_b")
    assert await w.revocation.revoke_many(ctx(), "usr_alice", "", current.session.id, "password_changed") == 2
    assert not w.store.sessions[current.session.id].revoked
    assert w.store.sessions[other.session.id].revoked and w.store.sessions[elsewhere.session.id].revoked
    # Repeating it revokes nothing more and announces nothing more.
    before = list(w.revocations.announced)
    assert await w.revocation.revoke_many(ctx(), "usr_alice", "", current.session.id, "password_changed") == 0
    assert w.revocations.announced == before


async def test_revoking_a_members_sessions_of_one_team() -> None:
    w = world()
    a, b = await login(w, team_id="tm_a"), await login(w, team_id="tm_b")
    assert await w.revocation.revoke_many(ctx(), "usr_alice", "tm_a", "", "member_removed") == 1
    assert w.store.sessions[a.session.id].revoked and not w.store.sessions[b.session.id].revoked


async def test_recent_revocations_cover_the_access_token_lifetime() -> None:
    w = world()
    old, recent = await login(w), await login(w)
    await w.revocation.revoke_one(ctx(), old.session.id, "", "admin")
    w.clock.advance(seconds=w.settings.access_token_ttl_seconds + 61)
    await w.revocation.revoke_one(ctx(), recent.session.id, "", "admin")
    assert await w.revocation.recent() == [recent.session.id]


async def test_a_failed_redis_write_is_announced_again() -> None:
    w = world()
    issued = await login(w)
    await w.revocation.revoke_one(ctx(), issued.session.id, "", "admin")
    w.revocations.behind = True
    await w.revocation.announce_again_if_behind()
    assert w.revocations.announced == [issued.session.id, issued.session.id] and not w.revocations.behind


# -- listing ------------------------------------------------------------------------------
async def test_listing_shows_live_sessions_newest_first_and_get_shows_any() -> None:
    w = world()
    first = await login(w)
    w.clock.advance(seconds=1)
    second = await login(w)
    await login(w, user_id="usr_bob")
    assert [s.id for s in await w.listing.list_sessions("usr_alice", "")] == [second.session.id, first.session.id]
    await w.revocation.revoke_one(ctx(), first.session.id, "usr_alice", "logout")
    assert [s.id for s in await w.listing.list_sessions("usr_alice", "")] == [second.session.id]
    assert (await w.listing.get(first.session.id)).revoked
    await fails("not_found", w.listing.get("ses_missing"))
    await fails("not_found", w.listing.get(""))


async def test_touch_moves_last_seen_at_most_once_a_minute() -> None:
    w = world()
    issued = await login(w)
    assert await w.listing.touch([issued.session.id, issued.session.id, ""]) == 0
    w.clock.advance(minutes=1, seconds=1)
    assert await w.listing.touch([issued.session.id]) == 1
    assert w.store.sessions[issued.session.id].last_seen_at == w.clock.now()


async def test_switch_team_reissues_tokens_and_never_lengthens_the_session() -> None:
    w = world()
    issued = await login(w)
    w.clock.advance(minutes=20)
    switched = await w.issuing.switch_team(ctx(), issued.session.id, "tm_b", 5, 0)
    assert switched.session.team_id == "tm_b"
    assert switched.session.expires_at == issued.session.expires_at
    assert switched.session.idle_expires_at == w.clock.now() + timedelta(minutes=5)
    assert switched.tokens.refresh_token != issued.tokens.refresh_token
    assert w.store.tokens[hash_token(issued.tokens.refresh_token)].rotated_at == w.clock.now()
    w.clock.advance(minutes=5)  # idle past the new team's limit
    await fails("session_expired", w.issuing.switch_team(ctx(), issued.session.id, "tm_c", 0, 0))


def test_the_session_message_never_carries_a_token() -> None:
    assert "refresh_token" not in sessions_pb2.Session.DESCRIPTOR.fields_by_name
