"""Signing-key rotation with a controllable clock: scheduled rotations publish each key before
it signs and keep it published while its tokens live, two replicas rotate once, and an
emergency rotation withdraws the compromised key at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.clock import FrozenClock
from deelrx_kit.db import reading
from deelrx_kit.grpc_server import channel
from gateway.tokens import InvalidToken, TokenVerifier
from services.sessions.adapters.sql import SqlSigningKeyStore, SqlTransactions, signing_keys
from services.sessions.domain.sealing import Sealer
from services.sessions.domain.signing_keys import RotationSchedule
from services.sessions.main import bootstrap
from services.sessions.signing import SigningKeys
from tests.integration.harness import make_settings
from tests.integration.sessions.conftest import Harness

SIGN_FOR = 3600
PUBLISH_AHEAD = 600
TTL = 300


@dataclass
class Rotating:
    service: Harness
    replicas: list[SigningKeys]
    verifier: TokenVerifier


@pytest.fixture
async def rotating(
    tmp_path: Path, database_url: str, nats_url: str, redis_url: str, clock: FrozenClock
) -> AsyncIterator[Rotating]:
    settings = make_settings(tmp_path, database_url, nats_url, redis_url).model_copy(
        update={
            "signing_key_rotation_seconds": SIGN_FOR,
            "signing_key_publish_ahead_seconds": PUBLISH_AHEAD,
            "access_token_ttl_seconds": TTL,
        }
    )
    rt = bootstrap(settings, grpc_port=0, clock=clock)
    await rt.start()
    chan = channel(f"127.0.0.1:{rt.grpc.port}")
    service = Harness(rt, sessions_pb2_grpc.SessionsServiceStub(chan), clock, settings)
    assert rt.sessionmaker is not None
    schedule = RotationSchedule(timedelta(seconds=SIGN_FOR), timedelta(seconds=PUBLISH_AHEAD))
    # Two more replicas of the key ring on the same database, racing each other.
    replicas = [
        SigningKeys(
            SqlTransactions(rt.sessionmaker),
            SqlSigningKeyStore(),
            Sealer(settings.secret(), "signing-key"),
            clock,
            TTL,
            schedule,
        )
        for _ in range(2)
    ]
    # A gateway's verifier on the test clock that never refetches on an unknown kid: a token
    # verifies only if its key was in the JWKS at the last periodic refresh.
    verifier = TokenVerifier(
        service.jwks,
        issuer=settings.public_url,
        audience=settings.jwt_audience,
        min_refetch_seconds=1e9,
        now=lambda: clock.now().timestamp(),
    )
    try:
        yield Rotating(service, replicas, verifier)
    finally:
        await chan.close()
        await rt.stop()


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_three_scheduled_rotations_keep_every_unexpired_token_valid(rotating: Rotating) -> None:
    service, verifier = rotating.service, rotating.verifier
    sessions = [await service.create(user_id=f"usr_{n}") for n in range(3)]
    refresh = {s.session.id: s.tokens.refresh_token for s in sessions}
    await verifier.refresh_keys(force=True)
    issued = [(s.tokens.access_token, s.tokens.access_expires_at.seconds) for s in sessions]
    signed_by: list[str] = [_kid(s.tokens.access_token) for s in sessions]
    minutes = (3 * SIGN_FOR + PUBLISH_AHEAD) // 60 + 15
    for minute in range(1, minutes + 1):
        service.clock.advance(seconds=60)
        # Both replicas run the scheduled step at the same moment; then the gateway's
        # periodic JWKS refresh (at least once a minute).
        await asyncio.gather(*(r.maintain() for r in rotating.replicas))
        await verifier.refresh_keys(force=True)
        if minute % 4 == 0:  # every session stays in use: renewed before its token expires
            for sid, token in list(refresh.items()):
                renewed = await service.refresh(token)  # raises if the session were logged out
                refresh[sid] = renewed.tokens.refresh_token
                issued.append((renewed.tokens.access_token, renewed.tokens.access_expires_at.seconds))
                signed_by.append(_kid(renewed.tokens.access_token))
        now = service.clock.now().timestamp()
        live = [token for token, exp in issued if exp > now]
        assert live
        for token in live:
            # Every unexpired token verifies, its key already known from a periodic refresh.
            assert (await verifier.verify(token)).exp > now
    kids_in_order = list(dict.fromkeys(signed_by))
    assert len(kids_in_order) == 4, kids_in_order  # three rotations
    # Retired keys leave the JWKS once their tokens are long expired.
    service.clock.advance(seconds=2 * TTL + 60)
    await rotating.replicas[0].maintain()
    await verifier.refresh_keys(force=True)
    assert kids_in_order[0] not in verifier.kids and kids_in_order[-1] in verifier.kids


async def test_replicas_rotating_together_publish_and_activate_one_key(rotating: Rotating) -> None:
    service = rotating.service
    await service.create()
    ring = rotating.replicas + rotating.replicas  # four concurrent steps
    service.clock.advance(seconds=SIGN_FOR - PUBLISH_AHEAD)
    await asyncio.gather(*(r.maintain() for r in ring))
    service.clock.advance(seconds=PUBLISH_AHEAD)
    await asyncio.gather(*(r.maintain() for r in ring))
    assert service.rt.sessionmaker is not None
    async with reading(service.rt.sessionmaker) as tx:
        rows = (await tx.execute(signing_keys.select())).all()
    assert len(rows) == 2  # one successor published, not four
    assert sum(1 for r in rows if r.active_slot == 1) == 1 and sum(1 for r in rows if r.retired_at) == 1


async def test_successor_is_published_before_it_signs(rotating: Rotating) -> None:
    service = rotating.service
    first = _kid((await service.create()).tokens.access_token)
    service.clock.advance(seconds=SIGN_FOR - PUBLISH_AHEAD)
    await rotating.replicas[0].maintain()
    published = [k["kid"] for k in json.loads(await service.jwks())["keys"]]
    assert len(published) == 2 and published[0] == first  # the successor is listed, not signing
    service.clock.advance(seconds=10)
    assert _kid((await service.create()).tokens.access_token) == first
    service.clock.advance(seconds=PUBLISH_AHEAD)
    await rotating.replicas[0].maintain()
    service.clock.advance(seconds=10)  # past the signer's short cache of the active key
    assert _kid((await service.create()).tokens.access_token) == published[1]


async def test_emergency_rotation_withdraws_the_key_and_sessions_renew(rotating: Rotating) -> None:
    service, verifier = rotating.service, rotating.verifier
    created = await service.create()
    await verifier.refresh_keys(force=True)
    token = created.tokens.access_token
    assert (await verifier.verify(token)).session_id == created.session.id  # verified and cached
    rotated = await service.stub.RotateSigningKey(sessions_pb2.RotateSigningKeyRequest(emergency=True))
    assert rotated.retired_kid == _kid(token) and rotated.kid != rotated.retired_kid
    assert rotated.retired_kid not in await service.jwks()
    await verifier.refresh_keys(force=True)  # the gateway's next periodic refresh
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
    service.clock.advance(seconds=6)
    renewed = await service.refresh(created.tokens.refresh_token)  # nobody is logged out
    assert _kid(renewed.tokens.access_token) == rotated.kid
    assert (await verifier.verify(renewed.tokens.access_token)).session_id == created.session.id
    # Nothing signs with the withdrawn key again, also on another replica.
    kid, _ = await rotating.replicas[0].signer()
    assert kid == rotated.kid
