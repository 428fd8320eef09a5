"""How audit replicas share the partitions of the AUDIT stream.

Each replica holds a lease on some partitions and consumes only those; a lease is renewed
while the replica lives and lapses when it stops, so another replica takes the partition
over. Every replica aims at an even share: ceil(partitions / live replicas). A replica over
its share gives partitions back (so a new replica gets work); one under it claims free or
lapsed ones. Pure arithmetic; the leases live in the database (adapters/partition_sql.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


def fair_share(partitions: int, live_replicas: int) -> int:
    return -(-partitions // max(live_replicas, 1))


@dataclass(frozen=True)
class LeasePlan:
    renew: frozenset[int]
    claim: tuple[int, ...]
    release: frozenset[int]


def plan(*, partitions: int, held: Collection[int], free: Collection[int], live_replicas: int) -> LeasePlan:
    """What to renew, try to claim (in order) and give back, given what this replica holds,
    which partitions nobody holds (or whose lease lapsed), and how many replicas are alive."""
    share = fair_share(partitions, live_replicas)
    kept = sorted(held)
    release = frozenset(kept[share:])  # the highest ones go: stable for the rest
    renew = frozenset(kept[:share])
    wanted = share - len(renew)
    claim = tuple(p for p in sorted(free) if p not in renew)[: max(wanted, 0)]
    return LeasePlan(renew, claim, release)
