"""What sessions' consumer of identity's password events revokes, decided over in-memory fakes:
nothing for an event that is not a successful reset or change of a user's password, and
nothing for one without a time (no bound that would spare a login with the new password)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx_kit.audit_events import new_event, subject_for
from services.sessions.password_changes import PasswordChanges
from tests.unit.sessions.fakes import World, world
from tests.unit.sessions.test_use_cases import login


def _msg(event: audit_pb2.AuditEvent) -> Any:
    return SimpleNamespace(data=event.SerializeToString(), subject=subject_for(event))


def _event(w: World, kind: str, user_id: str = "usr_alice", session_id: str = "") -> audit_pb2.AuditEvent:
    ctx = common_pb2.RequestContext(request_id="req_pw", session_id=session_id)
    return new_event(kind, source="identity", now=w.clock.now(), context=ctx, target=("user", user_id))


async def test_only_a_successful_reset_or_change_of_a_user_revokes() -> None:
    w = world()
    kept = await login(w)
    handler = PasswordChanges(w.revocation)
    failed = _event(w, "password.changed")
    failed.outcome = "failure"
    requested = _event(w, "password.reset_requested")
    untargeted = _event(w, "password.reset")
    untargeted.ClearField("target")
    timeless = _event(w, "password.reset")
    timeless.ClearField("time")
    for event in (failed, requested, untargeted, timeless):
        await handler.on_event(_msg(event))
    await handler.on_event(SimpleNamespace(data=b"\xff\xff", subject="audit.events.p00.password.reset"))
    assert not w.store.sessions[kept.session.id].revoked

    await handler.on_event(_msg(_event(w, "password.reset")))
    assert w.store.sessions[kept.session.id].revoked


async def test_a_change_spares_the_changing_session_and_a_reset_does_not() -> None:
    w = world()
    changer, other = await login(w), await login(w)
    handler = PasswordChanges(w.revocation)
    await handler.on_event(_msg(_event(w, "password.changed", session_id=changer.session.id)))
    assert w.store.sessions[other.session.id].revoked and not w.store.sessions[changer.session.id].revoked
    await handler.on_event(_msg(_event(w, "password.reset", session_id=changer.session.id)))
    assert w.store.sessions[changer.session.id].revoked
