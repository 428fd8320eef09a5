"""AuditTrail: an event built from named fields, staged in the caller's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx_kit import audit_events, db
from deelrx_kit.audit_trail import AuditTrail
from deelrx_kit.clock import FrozenClock
from deelrx_kit.outbox import Outbox, outbox_table

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CALLER = common_pb2.RequestContext(request_id="req_1", user_id="usr_caller", client_ip="203.0.113.7")


@pytest.fixture
async def setup() -> AsyncIterator[tuple[AuditTrail, Outbox, async_sessionmaker[AsyncSession]]]:
    metadata = db.new_metadata()
    outbox = Outbox(outbox_table(metadata))
    engine = db.create_engine("sqlite+aiosqlite:///:memory:", "public")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield AuditTrail(outbox, source="rbac", clock=FrozenClock(NOW)), outbox, db.session_factory(engine)
    await engine.dispose()


async def _staged(outbox: Outbox, sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, bytes]]:
    async with sessionmaker() as s:
        rows = await s.execute(select(outbox.table.c.subject, outbox.table.c.msg_id, outbox.table.c.payload))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_record_stages_the_event_in_the_callers_transaction(setup) -> None:  # type: ignore[no-untyped-def]
    trail, outbox, sessionmaker = setup
    async with db.transaction(sessionmaker) as tx:
        event = await trail.record(
            tx, "roles.updated", CALLER, team_id="tm_1", target=("role", "agent"), details={"role": "agent"}
        )
    [(subject, msg_id, payload)] = await _staged(outbox, sessionmaker)
    assert subject == audit_events.subject_for(event) and msg_id == event.id
    assert subject.startswith("audit.events.p") and subject.endswith(".roles.updated")  # the chain's partition
    staged = audit_pb2.AuditEvent.FromString(payload)
    assert staged == event
    assert (staged.source, staged.team_id, staged.request_id) == ("rbac", "tm_1", "req_1")
    assert (staged.target.type, staged.target.id) == ("role", "agent")
    assert staged.actor.user_id == "usr_caller" and staged.actor.ip == "203.0.113.7"
    assert staged.time.ToDatetime(tzinfo=UTC) == NOW
    assert dict(staged.details) == {"role": "agent"}


async def test_a_rolled_back_transaction_stages_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    trail, outbox, sessionmaker = setup
    with pytest.raises(RuntimeError):
        async with db.transaction(sessionmaker) as tx:
            await trail.record(tx, "member.removed", CALLER, team_id="tm_1", target=("user", "usr_2"))
            raise RuntimeError("the change failed")
    assert await _staged(outbox, sessionmaker) == []


async def test_built_events_are_staged_later_in_order(setup) -> None:  # type: ignore[no-untyped-def]
    trail, outbox, sessionmaker = setup
    first = trail.build("customer.assigned", CALLER, team_id="tm_1", target=("customer", "cus_9"))
    second = trail.build("member.joined", None, team_id="tm_1", actor_user_id="usr_owner", target=("user", "usr_3"))
    async with db.transaction(sessionmaker) as tx:
        await trail.stage(tx, first)
        await trail.stage(tx, second)
    staged = [audit_pb2.AuditEvent.FromString(p) for _, _, p in await _staged(outbox, sessionmaker)]
    assert {e.id for e in staged} == {first.id, second.id}
    assert second.actor.user_id == "usr_owner"  # named actor, no caller context
    assert (first.target.type, first.target.id) == ("customer", "cus_9")


def test_secret_details_are_refused_before_anything_is_staged(setup) -> None:  # type: ignore[no-untyped-def]
    trail, _, _ = setup
    with pytest.raises(ValueError, match="secrets"):
        trail.build("password.changed", CALLER, details={"password": "hunter2"})
