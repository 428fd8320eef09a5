"""The Redis keys more than one process reads or writes, named once.

A sessions replica writes a revoked session's key and every gateway reads it, so the two
must agree on the spelling; the other prefixes are shared by the replicas of one process.
"""

from __future__ import annotations

# `deelrx:revoked:<session id>`: set (with a TTL) by sessions, asked by gateways whose NATS feed is down.
REVOKED_SESSION_PREFIX = "deelrx:revoked:"
# Gateway rate-limit counters: `deelrx:rl:...`.
RATE_LIMIT_PREFIX = "deelrx:rl"
# Gateway idempotency slots: `deelrx:idem:<digest>`.
IDEMPOTENCY_PREFIX = "deelrx:idem:"
# Detector sliding windows: `deelrx:detector:...`.
DETECTOR_PREFIX = "deelrx:detector:"
# Gateway change revisions, shared by every replica: `deelrx:rev:{u:<user>}`, `deelrx:rev:{t:<team>}`.
CHANGE_REVISION_PREFIX = "deelrx:rev:"


def revoked_session(session_id: str) -> str:
    return REVOKED_SESSION_PREFIX + session_id
