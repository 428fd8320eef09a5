"""The window stores (memory and Redis) answer the same contract, and the detector over
Redis survives restarts and splits across replicas without losing or double-counting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from deelrx.audit.v1 import audit_pb2
from services.detector.adapters.memory_windows import MemoryWindowStore
from services.detector.adapters.nats_events import observation
from services.detector.adapters.redis_windows import RedisWindowStore
from services.detector.app import Detector
from services.detector.domain.rules import RaisedAlert, RuleSet
from services.detector.ports import WindowStore

from . import traces
from .traces import T0


class Collected:
    def __init__(self) -> None:
        self.alerts: list[RaisedAlert] = []

    async def publish(self, alert: RaisedAlert) -> None:
        self.alerts.append(alert)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[WindowStore]:
    if request.param == "memory":
        yield MemoryWindowStore()
        return
    client = Redis.from_url(redis_url)
    yield RedisWindowStore(client, prefix=f"t:{uuid.uuid4().hex}:")
    await client.aclose()


def _obs(i: int, at: float) -> object:
    from services.detector.domain.rules import Observation

    return Observation(id=f"evt_{i}", time=T0 + timedelta(seconds=at), type="auth.login_failed", user_id="usr_a")


async def test_add_counts_an_event_once_and_slides(store: WindowStore) -> None:
    first = await store.add("k", _obs(1, 0), 300)  # type: ignore[arg-type]
    assert first.fresh and first.counts and [e.id for e in first.entries] == ["evt_1"]
    again = await store.add("k", _obs(1, 0), 300)  # type: ignore[arg-type]
    assert not again.fresh and again.counts and len(again.entries) == 1
    await store.add("k", _obs(2, 300), 300)  # type: ignore[arg-type]
    w = await store.add("k", _obs(3, 301), 300)  # type: ignore[arg-type]
    assert [e.id for e in w.entries] == ["evt_2", "evt_3"]  # evt_1 slid out; 300 s apart stays
    late = await store.add("k", _obs(4, -10), 300)  # type: ignore[arg-type]
    assert not late.counts
    inside = await store.add("k", _obs(5, 150), 300)  # type: ignore[arg-type]
    assert [e.id for e in inside.entries] == ["evt_5", "evt_2", "evt_3"]  # late but inside: in time order


async def test_claim_is_held_for_the_quiet_period(store: WindowStore) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    first = await store.claim("q", "alr_1", "evt_1", t, t + timedelta(seconds=300))
    assert first.new and (first.alert_id, first.event_id) == ("alr_1", "evt_1")
    held = await store.claim("q", "alr_2", "evt_2", t + timedelta(seconds=10), t + timedelta(seconds=310))
    assert not held.new and (held.alert_id, held.event_id) == ("alr_1", "evt_1")
    later = await store.claim("q", "alr_3", "evt_3", t + timedelta(seconds=300), t + timedelta(seconds=600))
    assert later.new and later.alert_id == "alr_3"


async def test_concurrent_claims_give_the_alert_to_one(redis: Redis) -> None:
    stores = [RedisWindowStore(redis, prefix="t:claim:" + uuid.uuid4().hex) for _ in range(1)] * 20
    t = datetime(2026, 1, 1, tzinfo=UTC)
    claims = await asyncio.gather(*(s.claim("q", "alr_x", "evt_x", t, t + timedelta(seconds=60)) for s in stores))
    assert sum(c.new for c in claims) == 1


async def _run(detector: Detector, events: list[audit_pb2.AuditEvent]) -> None:
    for e in events:
        await detector.observe(observation(e, T0))


def _detector(redis: Redis, prefix: str, sink: Collected) -> Detector:
    return Detector(RuleSet(), RedisWindowStore(redis, prefix=prefix), sink)


def _keys(alerts: list[RaisedAlert]) -> set[tuple[str, str]]:
    return {(a.rule, a.subject) for a in alerts}


async def test_a_restart_mid_attack_loses_nothing(redis: Redis) -> None:
    prefix = f"t:{uuid.uuid4().hex}:"
    victim = "usr_restart"
    events = traces.brute_force(victim)
    before, after = Collected(), Collected()
    await _run(_detector(redis, prefix, before), events[:6])
    await _run(_detector(redis, prefix, after), events[6:])  # a new process: windows are in Redis
    assert before.alerts == [] and _keys(after.alerts) == {("brute_force", f"user:{victim}")}


async def test_two_replicas_splitting_the_events_count_like_one(redis: Redis) -> None:
    prefix = f"t:{uuid.uuid4().hex}:"
    events = traces.spray() + traces.brute_force("usr_split")
    events.sort(key=lambda e: (e.time.seconds, e.time.nanos))
    sink_a, sink_b = Collected(), Collected()
    a, b = _detector(redis, prefix, sink_a), _detector(redis, prefix, sink_b)
    # Each event goes to one replica (a shared durable consumer), concurrently.
    await asyncio.gather(_run(a, events[0::2]), _run(b, events[1::2]))
    raised = sink_a.alerts + sink_b.alerts
    assert sorted((a.rule, a.subject) for a in raised) == sorted(
        [("password_spray", "ip:198.51.100.77"), ("brute_force", "user:usr_split")]
    )


async def test_redelivery_to_another_replica_after_a_crash_raises_the_alert_again(redis: Redis) -> None:
    prefix = f"t:{uuid.uuid4().hex}:"
    events = traces.brute_force("usr_crash")
    crashed = Collected()

    class Dies:
        async def publish(self, alert: RaisedAlert) -> None:
            raise RuntimeError("killed before publishing")

    first = _detector(redis, prefix, crashed)
    await _run(first, events[:9])
    first.sink = Dies()
    with pytest.raises(RuntimeError):
        await first.observe(observation(events[9], T0))
    survivor = Collected()
    await _run(_detector(redis, prefix, survivor), events[9:])  # the unacked 10th comes again
    assert _keys(survivor.alerts) == {("brute_force", "user:usr_crash")}
