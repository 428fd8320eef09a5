"""Stream partitions: one chain, one partition, on the producers' side and on the audit
service's; replicas share the partitions evenly; months for the PostgreSQL partitions."""

from __future__ import annotations

from datetime import UTC, datetime

from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.audit_partitions import PARTITIONS, chain_key, partition_of, partition_token
from services.audit.adapters.nats_legacy import is_partitioned
from services.audit.adapters.protobuf_records import event_record
from services.audit.domain.months import month_of, months_around
from services.audit.domain.partitions import fair_share, plan

NOW = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


def test_the_producers_subject_names_the_partition_of_the_chain_the_audit_service_computes() -> None:
    for kw in (
        {"team_id": "tm_1", "actor_user_id": "usr_1"},
        {"actor_user_id": "usr_2"},
        {"subject_hash": "hmac-sha256:abc"},
        {},
        {"team_id": "t" * 200},  # longer than the stored column: clipped the same way on both sides
    ):
        ev = new_event("auth.login_failed", source="t", now=NOW, **kw)
        record = event_record(ev, NOW)
        token = partition_token(partition_of(record.chain_key))
        assert subject_for(ev) == f"audit.events.{token}.auth.login_failed"


def test_events_of_one_chain_share_a_partition_and_chains_spread_over_all() -> None:
    keys = [chain_key(team_id=f"tm_{i}", actor_user_id="", subject_hash="") for i in range(2000)]
    assert {partition_of(k) for k in keys} == set(range(PARTITIONS))
    assert partition_of("team:tm_7") == partition_of("team:tm_7")


def test_two_replicas_split_sixteen_partitions_evenly() -> None:
    assert fair_share(16, 1) == 16 and fair_share(16, 2) == 8 and fair_share(16, 3) == 6
    alone = plan(partitions=16, held=set(), free=set(range(16)), live_replicas=1)
    assert alone.claim == tuple(range(16)) and not alone.release
    # A second replica appears: the first gives back the upper half...
    first = plan(partitions=16, held=set(range(16)), free=set(), live_replicas=2)
    assert first.release == frozenset(range(8, 16)) and first.renew == frozenset(range(8))
    # ...and the second claims what is free, up to its share.
    second = plan(partitions=16, held=set(), free=set(range(8, 16)), live_replicas=2)
    assert second.claim == tuple(range(8, 16))


def test_a_replica_under_its_share_claims_only_what_is_free() -> None:
    p = plan(partitions=16, held={0, 1}, free={5, 6, 7}, live_replicas=2)
    assert p.renew == frozenset({0, 1}) and p.claim == (5, 6, 7) and not p.release


def test_months_cover_the_year_end() -> None:
    dec = month_of(NOW)
    assert dec.start == datetime(2026, 12, 1, tzinfo=UTC) and dec.end == datetime(2027, 1, 1, tzinfo=UTC)
    starts = [m.start.strftime("%Y-%m") for m in months_around(NOW)]
    assert starts == ["2026-11", "2026-12", "2027-01", "2027-02"]
    jan = months_around(datetime(2027, 1, 15, tzinfo=UTC), before=1, ahead=0)
    assert [m.start.month for m in jan] == [12, 1]


def test_the_legacy_drain_tells_old_subjects_from_partitioned_ones() -> None:
    ev = new_event("member.removed", source="test", now=NOW, team_id="tm_1")
    assert is_partitioned(subject_for(ev))
    assert not is_partitioned("audit.events.member.removed")
    # A type whose first word merely starts with p is old form, not a partition.
    assert not is_partitioned("audit.events.password.changed")
    assert not is_partitioned("audit.events.p1.x") and is_partitioned("audit.events.p15.x")
