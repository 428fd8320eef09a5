"""The gateway's JWKS cache: bounded refetching on unknown `kid`s (also after failures),
periodic refresh that drops withdrawn keys, and verified-token cache eviction with them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.tokens import InvalidToken, TokenVerifier
from tests.unit.gateway.test_tokens import AUD, ISS, _jwks, _token


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


class Sessions:
    """Stands in for sessions.GetJwks: counts calls, can fail."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.calls = 0
        self.down = False

    async def fetch(self) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("sessions unavailable")
        return self.document


async def test_flood_of_unknown_kids_fetches_at_most_once_per_interval() -> None:
    key = Ed25519PrivateKey.generate()
    sessions = Sessions(_jwks(("k1", key)))
    verifier = TokenVerifier(sessions.fetch, issuer=ISS, audience=AUD, min_refetch_seconds=30)
    await verifier.refresh_keys(force=True)
    forged = [_token(key, f"random-{uuid.uuid4().hex}") for _ in range(200)]
    results = await asyncio.gather(*(verifier.verify(t) for t in forged), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    assert sessions.calls == 1  # the start-up fetch; the flood caused none


async def test_unknown_kid_refetches_after_the_interval() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    sessions, ticks = Sessions(_jwks(("k1", old))), Ticks()
    verifier = TokenVerifier(sessions.fetch, issuer=ISS, audience=AUD, min_refetch_seconds=5, monotonic=ticks)
    await verifier.refresh_keys(force=True)
    sessions.document = _jwks(("k1", old), ("k2", new))
    ticks.value += 4.9
    with pytest.raises(InvalidToken):  # too soon after the last fetch: no new fetch yet
        await verifier.verify(_token(new, "k2"))
    ticks.value += 0.1
    assert (await verifier.verify(_token(new, "k2"))).user_id == "usr_1"
    assert sessions.calls == 2


async def test_failed_fetches_back_off() -> None:
    key = Ed25519PrivateKey.generate()
    sessions, ticks = Sessions(_jwks(("k1", key))), Ticks()
    verifier = TokenVerifier(sessions.fetch, issuer=ISS, audience=AUD, min_refetch_seconds=5, monotonic=ticks)
    sessions.down = True
    for _ in range(50):
        with pytest.raises(InvalidToken):
            await verifier.verify(_token(key, "k1"))
    assert sessions.calls == 1  # the first failure opens a 5 s window
    ticks.value += 5
    with pytest.raises(InvalidToken):
        await verifier.verify(_token(key, "k1"))
    assert sessions.calls == 2
    ticks.value += 5  # second failure: the wait doubled to 10 s
    with pytest.raises(InvalidToken):
        await verifier.verify(_token(key, "k1"))
    assert sessions.calls == 2
    for _ in range(10):  # the wait never exceeds a minute
        ticks.value += 60
        with pytest.raises(InvalidToken):
            await verifier.verify(_token(key, "k1"))
    assert sessions.calls == 12
    sessions.down = False
    ticks.value += 60
    assert (await verifier.verify(_token(key, "k1"))).session_id == "ses_1"


async def test_periodic_refresh_stops_trusting_a_withdrawn_key_even_for_cached_tokens() -> None:
    compromised, successor = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    sessions = Sessions(_jwks(("k1", compromised)))
    verifier = TokenVerifier(sessions.fetch, issuer=ISS, audience=AUD, min_refetch_seconds=60)
    stop = asyncio.Event()
    refresher = asyncio.create_task(verifier.run_refresh(0.05, stop))
    try:
        token = _token(compromised, "k1")
        await asyncio.sleep(0.01)
        assert (await verifier.verify(token)).user_id == "usr_1"  # verified and cached
        sessions.document = _jwks(("k2", successor))  # emergency rotation withdrew k1
        for _ in range(100):
            if "k1" not in verifier.kids:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(InvalidToken):
            await verifier.verify(token)
        assert (await verifier.verify(_token(successor, "k2"))).user_id == "usr_1"
    finally:
        stop.set()
        await refresher


async def test_document_is_served_from_the_cache() -> None:
    key = Ed25519PrivateKey.generate()
    sessions = Sessions(_jwks(("k1", key)))
    verifier = TokenVerifier(sessions.fetch, issuer=ISS, audience=AUD)
    assert await verifier.document() == sessions.document
    for _ in range(10):
        await verifier.document()
    assert sessions.calls == 1


@pytest.mark.parametrize("kid", ["../../etc/passwd", "' OR 1=1 --", "x" * 500, ""])
async def test_hostile_kids_are_refused_without_a_fetch(kid: str) -> None:
    key = Ed25519PrivateKey.generate()
    sessions = Sessions(_jwks(("k1", key)))
    verifier = TokenVerifier(sessions.fetch, issuer=ISS, audience=AUD, min_refetch_seconds=30)
    await verifier.refresh_keys(force=True)
    with pytest.raises(InvalidToken):
        await verifier.verify(_token(key, kid))
    assert sessions.calls == 1
