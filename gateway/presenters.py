"""Protobuf -> public JSON shapes of docs/api.md."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from deelrx.identity.v1 import identity_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.clock import rfc3339


def time_of(ts: Timestamp) -> str | None:
    if not ts.seconds and not ts.nanos:
        return None
    return rfc3339(ts.ToDatetime(tzinfo=UTC))


def user_json(user: identity_pb2.User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "email_verified": user.email_verified,
        "mfa_enabled": user.mfa_enabled,
    }


def session_json(session: sessions_pb2.Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "created_at": time_of(session.created_at),
        "expires_at": time_of(session.expires_at),
        "idle_expires_at": time_of(session.idle_expires_at),
        "amr": list(session.amr),
    }
