"""StreamPartitions over an in-memory lease table: replicas split the AUDIT stream's
partitions fairly, hand over what is above their share, and take over a lease that lapsed;
the replica that lost one can no longer store for it."""

from __future__ import annotations

import asyncio

import pytest

from deelrx_kit.audit_partitions import partition_of
from services.audit.app import LeaseLost, PartitionFence
from services.audit.domain.events import EventRecord
from tests.unit.audit.fakes import T0, AuditWorld

ALL = set(range(16))


async def test_a_lone_replica_consumes_every_partition() -> None:
    w = AuditWorld()
    r1, c1 = w.replica("r1")

    await r1.rebalance()

    assert c1.running == ALL and w.leases.owned_by("r1") == ALL


async def test_two_replicas_split_the_sixteen_partitions_evenly() -> None:
    w = AuditWorld()
    (r1, c1), (r2, c2) = w.replica("r1"), w.replica("r2")
    await r1.rebalance()

    await r2.rebalance()  # r2 is alive now, but r1 still holds everything
    assert c2.running == set()
    await r1.rebalance()  # gives back what is above its share (the highest partitions)
    await r2.rebalance()

    assert c1.running == set(range(8)) and c2.running == set(range(8, 16))
    assert c1.stopped == list(range(8, 16))
    assert w.leases.owned_by("r1") == set(range(8)) and w.leases.owned_by("r2") == set(range(8, 16))
    for _ in range(3):  # stable once split
        w.clock.advance(seconds=5)
        await r1.rebalance()
        await r2.rebalance()
    assert c1.running == set(range(8)) and c2.running == set(range(8, 16))


async def test_a_lapsed_lease_is_taken_over_and_its_old_holder_is_fenced() -> None:
    w = AuditWorld()
    (r1, c1), (r2, c2) = w.replica("r1"), w.replica("r2")
    await r1.rebalance()
    await r2.rebalance()
    await r1.rebalance()
    await r2.rebalance()
    e = EventRecord("evt_late", T0, "member.joined", team_id="t1")
    p = partition_of(e.chain_key)
    owner = "r1" if p < 8 else "r2"
    survivor, survivor_consumers = (r2, c2) if owner == "r1" else (r1, c1)

    # The owner stalls; the survivor keeps rebalancing until the owner counts as gone.
    for _ in range(8):
        w.clock.advance(seconds=5)
        await survivor.rebalance()

    assert survivor_consumers.running == ALL
    with pytest.raises(LeaseLost) as lost:
        await w.log.record_events([e], fence=PartitionFence(owner, frozenset({p})))
    assert lost.value.partitions == {p} and w.events.rows == {}


async def test_a_replica_back_from_a_stall_stops_the_consumers_it_no_longer_holds() -> None:
    w = AuditWorld()
    (r1, c1), (r2, c2) = w.replica("r1"), w.replica("r2")
    await r1.rebalance()
    await r2.rebalance()
    await r1.rebalance()
    await r2.rebalance()
    for _ in range(8):
        w.clock.advance(seconds=5)
        await r2.rebalance()

    await r1.rebalance()  # alive again: its leases are gone, so its consumers stop
    assert c1.running == set()
    await r2.rebalance()  # two live replicas again: r2 gives back half
    await r1.rebalance()
    assert c1.running == set(range(8, 16)) and c2.running == set(range(8))


async def test_stopping_releases_every_lease_at_once() -> None:
    w = AuditWorld()
    r1, c1 = w.replica("r1")
    await r1.rebalance()
    stop = asyncio.Event()
    stop.set()

    await r1.run(stop)

    assert c1.running == set() and w.leases.held == {}
