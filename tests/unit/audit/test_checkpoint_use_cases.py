"""ChainCheckpoints over in-memory stores: a chain head is signed only after what was appended
since the last checkpoint verified, and a signed checkpoint reveals a cut or rewritten tail
that the chain links alone cannot."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

from services.audit.checkpoints import CheckpointKey
from services.audit.domain.events import EventRecord, chain, team_chain
from tests.unit.audit.fakes import T0, AuditWorld

_ids = itertools.count(1)
T1 = team_chain("t1")


def events(n: int, team: str = "t1") -> list[EventRecord]:
    return [EventRecord(f"evt_{next(_ids):04d}", T0, "member.joined", team_id=team) for _ in range(n)]


async def signed_world(n: int = 3) -> tuple[AuditWorld, list[EventRecord]]:
    w = AuditWorld()
    w.log.checkpoint_key = w.key  # as bootstrap sets it
    batch = events(n)
    await w.log.record_events(batch)
    assert await w.signer.sign_head(T1) is not None
    return w, batch


async def test_the_head_is_signed_once_and_the_signature_verifies() -> None:
    w, _ = await signed_world(3)

    [cp] = w.checkpoints.signed[T1]
    assert (cp.seq, cp.head_hash) == w.events.heads[T1]
    assert w.key.valid(cp) and not CheckpointKey(b"another-secret").valid(cp)
    assert await w.signer.sign_head(T1) is None  # nothing appended since
    check = await w.log.verify_chain(team_id="t1")
    assert check.ok and check.checkpoints_checked == 1


async def test_only_chains_that_moved_are_signed_again() -> None:
    w, _ = await signed_world(2)
    await w.log.record_events(events(2, team="t2"))

    assert await w.signer.sign_moved_chains() == 1
    assert list(w.checkpoints.signed) == [T1, team_chain("t2")]
    await w.log.record_events(events(1))
    w.clock.advance(seconds=1)
    assert await w.signer.sign_moved_chains() == 1
    assert [c.seq for c in w.checkpoints.signed[T1]] == [2, 3]


async def test_a_truncated_tail_passes_the_links_but_not_the_checkpoint() -> None:
    w, batch = await signed_world(4)
    # Cut the last two events and move the head back: every remaining link still holds.
    del w.events.rows[(T1, 4)], w.events.rows[(T1, 3)]
    w.events.heads[T1] = (2, w.events.rows[(T1, 2)].hash)

    w.log.checkpoint_key = None
    assert (await w.log.verify_chain(team_id="t1")).ok  # the links alone cannot tell
    w.log.checkpoint_key = w.key
    check = await w.log.verify_chain(team_id="t1")

    assert not check.ok and "truncated" in check.problem
    assert check.first_bad_event_id == batch[1].id  # the last event that is left


async def test_a_rewritten_and_relinked_tail_differs_from_the_checkpoint() -> None:
    w, batch = await signed_world(3)
    # Rewrite the last event and recompute its hash and the head, as an attacker with the
    # database (but not the signing key) can.
    old = w.events.rows[(T1, 3)]
    forged = chain(replace(old.event, type="member.left"), prev_seq=2, prev_hash=old.prev_hash, stored_at=old.stored_at)
    w.events.rows[(T1, 3)] = forged
    w.events.heads[T1] = (3, forged.hash)

    check = await w.log.verify_chain(team_id="t1")

    assert not check.ok and "differs from the signed checkpoint" in check.problem
    assert check.first_bad_event_id == batch[2].id


async def test_a_tampered_tail_is_never_signed() -> None:
    w, _ = await signed_world(2)
    await w.log.record_events(events(2))
    row = w.events.rows[(T1, 4)]
    w.events.rows[(T1, 4)] = replace(row, event=replace(row.event, actor_user_id="u_forged"))
    w.clock.advance(minutes=1)

    assert await w.signer.sign_head(T1) is None
    assert [c.seq for c in w.checkpoints.signed[T1]] == [2]


async def test_a_checkpoint_with_a_forged_signature_fails_verification() -> None:
    w, _ = await signed_world(2)
    cp = w.checkpoints.signed[T1][0]
    w.checkpoints.signed[T1][0] = replace(cp, signed_at=cp.signed_at + timedelta(seconds=1))

    check = await w.log.verify_chain(team_id="t1")

    assert not check.ok and "invalid signature" in check.problem
