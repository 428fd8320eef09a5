"""Which partition of the AUDIT stream an audit event goes to.

The audit service links every event into a hash chain (per team, per acting user, per keyed
subject, or the platform chain). Events are published on `audit.events.p<NN>.<type>`, where NN
follows from the chain alone, so all events of one chain share a partition and its order; each
audit replica consumes the partitions it holds a lease on (services/audit), and no two replicas
ever append to the same chain at once. The mapping must never change for a running stream:
PARTITIONS is part of the wire format.
"""

from __future__ import annotations

import zlib

PARTITIONS = 16
PREFIX = "audit.events."

# The stored column sizes (services/audit/adapters/sql.py): the chain is computed from the
# clipped values there, so it is here too, or an oversized id would land in another partition.
_ID_SIZE = 64
_SUBJECT_HASH_SIZE = 128


def chain_key(*, team_id: str, actor_user_id: str, subject_hash: str) -> str:
    if team_id:
        return f"team:{team_id[:_ID_SIZE]}"
    if actor_user_id:
        return f"user:{actor_user_id[:_ID_SIZE]}"
    if subject_hash:
        return f"subject:{subject_hash[:_SUBJECT_HASH_SIZE]}"
    return "platform"


def partition_of(key: str, partitions: int = PARTITIONS) -> int:
    # crc32: stable across processes and versions (unlike hash()), and cheap.
    return zlib.crc32(key.encode()) % partitions


def partition_token(partition: int) -> str:
    return f"p{partition:02d}"


def partition_filter(partition: int) -> str:
    """The consumer filter subject of one partition."""
    return f"{PREFIX}{partition_token(partition)}.>"


def event_subject(key: str, event_type: str) -> str:
    return f"{PREFIX}{partition_token(partition_of(key))}.{event_type}"


def type_filter(event_type: str) -> str:
    """Every partition's events of one type (e.g. a consumer of `member.removed` only)."""
    return f"{PREFIX}*.{event_type}"
