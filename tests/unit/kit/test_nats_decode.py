"""nats_bus.decode: a protobuf out of a NATS message, or None (logged) for anything else."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from structlog.testing import capture_logs

from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit import nats_bus


def _msg(data: bytes, subject: str = "rbac.changed.tm_1") -> Any:
    return SimpleNamespace(data=data, subject=subject)  # the two attributes of nats.aio.msg.Msg it reads


def test_a_message_decodes_to_its_type() -> None:
    notice = rbac_pb2.AuthorizationChanged(team_id="tm_1", revision=7, user_id="usr_1")
    assert nats_bus.decode(_msg(notice.SerializeToString()), rbac_pb2.AuthorizationChanged) == notice


def test_bare_payloads_decode_too() -> None:
    revoked = sessions_pb2.SessionRevoked(session_ids=["ses_1"], reason="logout")
    assert nats_bus.decode(revoked.SerializeToString(), sessions_pb2.SessionRevoked) == revoked


def test_garbage_is_logged_and_dropped() -> None:
    with capture_logs() as logs:
        assert nats_bus.decode(_msg(b"\xff\xff\xff"), rbac_pb2.AuthorizationChanged) is None
    [entry] = [e for e in logs if e["event"] == "message_undecodable"]
    assert entry["type"] == "deelrx.rbac.v1.AuthorizationChanged"
    assert entry["subject"] == "rbac.changed.tm_1" and entry["size"] == 3


def test_the_subject_of_a_bare_payload_is_named_by_the_caller() -> None:
    with capture_logs() as logs:
        assert nats_bus.decode(b"\x0a\x05", sessions_pb2.SessionRevoked, subject="sessions.revoked") is None
    assert [e["subject"] for e in logs if e["event"] == "message_undecodable"] == ["sessions.revoked"]
