"""Building audit events (the `deelrx.audit.v1.AuditEvent` envelope) in any service."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.struct_pb2 import Struct

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx_kit import audit_partitions, keys
from deelrx_kit.ids import new_id
from deelrx_kit.secret_fields import SECRET_FIELD_NAMES
from deelrx_kit.timestamps import to_timestamp

# Detail keys that would carry a secret; refused outright so a slip fails loudly in tests.
FORBIDDEN_DETAIL_KEYS = SECRET_FIELD_NAMES | {"otp", "totp_secret", "hash", "password_hash"}


def keyed_hash(secret: bytes, identifier: str, purpose: str = keys.IDENTIFIER_HASH) -> str:
    """Stable pseudonym for an identifier (e.g. an unknown email), under the key of `purpose`
    derived from `secret`: never the CSRF key, so no pseudonym equals part of a CSRF token."""
    key = keys.derive_key(secret, purpose)
    digest = hmac.new(key, identifier.strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{digest[:32]}"


def new_event(
    type: str,
    *,
    source: str,
    now: datetime,
    context: common_pb2.RequestContext | None = None,
    team_id: str = "",
    actor_user_id: str = "",
    target: tuple[str, str] | None = None,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
    subject_hash: str = "",
    session_id: str = "",
) -> audit_pb2.AuditEvent:
    if details:
        bad = FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in details)
        if bad:
            raise ValueError(f"audit details must not carry secrets: {sorted(bad)}")
    ctx = context or common_pb2.RequestContext()
    event = audit_pb2.AuditEvent(
        id=new_id("evt"),
        time=to_timestamp(now),
        type=type,
        team_id=team_id,
        actor=audit_pb2.Actor(user_id=actor_user_id or ctx.user_id, ip=ctx.client_ip, user_agent=ctx.user_agent[:512]),
        outcome=outcome,
        source=source,
        request_id=ctx.request_id,
        subject_hash=subject_hash,
        session_id=session_id or ctx.session_id,
    )
    if target:
        event.target.type, event.target.id = target
    if details:
        struct = Struct()
        struct.update({k: v for k, v in details.items() if v is not None})
        event.details.CopyFrom(struct)
    return event


def subject_for(event: audit_pb2.AuditEvent) -> str:
    """`audit.events.<partition>.<type>`: the partition follows from the event's chain
    (deelrx_kit/audit_partitions.py), so one audit replica stores each chain."""
    key = audit_partitions.chain_key(
        team_id=event.team_id, actor_user_id=event.actor.user_id, subject_hash=event.subject_hash
    )
    return audit_partitions.event_subject(key, event.type)
