"""Signed checkpoints of a hash chain: (chain, seq, head hash, time, key id) signed with
Ed25519. A chain link alone cannot show that its tail was cut or rewritten (the attacker
recomputes the later hashes and the head); a checkpoint signed earlier can: the chain must
still reach the checkpoint's seq, and its event there must still have the signed hash."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from services.audit.domain.events import time_text


@dataclass(frozen=True)
class Checkpoint:
    chain_key: str
    seq: int
    head_hash: str
    signed_at: datetime
    key_id: str
    signature: str  # base64url, no padding

    def message(self) -> bytes:
        return signed_message(self.chain_key, self.seq, self.head_hash, self.signed_at, self.key_id)


def signed_message(chain_key: str, seq: int, head_hash: str, signed_at: datetime, key_id: str) -> bytes:
    doc = {
        "v": 1,
        "chain_key": chain_key,
        "seq": seq,
        "head_hash": head_hash,
        "signed_at": time_text(signed_at),
        "key_id": key_id,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_problem(
    checkpoints: list[Checkpoint], head_seq: int, hash_at: dict[int, str], valid_signature: list[bool]
) -> tuple[str, int]:
    """The first problem the checkpoints reveal ("" when none) and the seq it concerns."""
    for cp, valid in zip(checkpoints, valid_signature, strict=True):
        if not valid:
            return f"checkpoint at seq {cp.seq} has an invalid signature", cp.seq
        if cp.seq > head_seq:
            return f"chain truncated: checkpoint signed at seq {cp.seq}, chain ends at seq {head_seq}", head_seq
        if hash_at.get(cp.seq) != cp.head_hash:
            return f"event at seq {cp.seq} differs from the signed checkpoint", cp.seq
    return "", 0
