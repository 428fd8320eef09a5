"""What a refresh request means, decided from records alone.

The refresh use case reads the presented token, its session and (when the token was already
rotated) the successor under the session lock, opens the sealed successor if there is one,
and asks `decide`. Each answer is one case of a closed union the use case dispatches on:

- `Expired`: the session is revoked, idle or past its absolute end (nothing is rotated);
- `Rotate`: the family's current token: issue a successor;
- `ReturnGraceSuccessor`: a just-rotated token replayed inside the grace interval while its
  successor is unused: hand out that same successor again (a retry, or a race with a thief);
- `ReuseDetected`: any other presentation of a rotated token: the family is compromised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.sessions.domain.lifetimes import Liveness
from services.sessions.domain.records import RefreshTokenRecord, SessionRecord


@dataclass(frozen=True)
class Expired:
    liveness: Liveness


@dataclass(frozen=True)
class Rotate:
    generation: int  # of the presented token; its successor gets generation + 1


@dataclass(frozen=True)
class ReturnGraceSuccessor:
    successor: str  # the already-issued successor, opened from its seal
    generation: int


@dataclass(frozen=True)
class ReuseDetected:
    generation: int | None  # None when the token vanished while we looked (a raced rotation)


RefreshDecision = Expired | Rotate | ReturnGraceSuccessor | ReuseDetected


def decide(
    *,
    token: RefreshTokenRecord,
    session: SessionRecord,
    now: datetime,
    grace: timedelta,
    successor: RefreshTokenRecord | None = None,
    opened_successor: str | None = None,
) -> RefreshDecision:
    """`successor` is the stored record `token.successor_hash` names (None when missing or
    not looked up); `opened_successor` is the sealed successor opened with the service's key
    (None when there is no seal or it did not open: a changed secret or a tampered row fails
    closed, as reuse)."""
    liveness = session.liveness(now)
    if liveness is not Liveness.LIVE:
        return Expired(liveness)
    if token.rotated_at is None:
        return Rotate(token.generation)
    successor_unused = (
        successor is not None and successor.token_hash == token.successor_hash and successor.rotated_at is None
    )
    if successor_unused and opened_successor is not None and now - token.rotated_at <= grace:
        return ReturnGraceSuccessor(opened_successor, token.generation)
    return ReuseDetected(token.generation)


def grace_replay_details(
    session: SessionRecord, decision: ReturnGraceSuccessor, *, caller_device: str, caller_ip: str
) -> dict[str, Any]:
    """What `session.refresh_replayed_in_grace` records: where the replay came from beside
    where the session lives, so the detector (and the user's activity) can tell a retry from
    a stolen token raced against its owner."""
    return {
        "device": caller_device,
        "ip": caller_ip,
        "session_device": session.device_label,
        "session_ip": session.ip,
        "generation": decision.generation,
    }
