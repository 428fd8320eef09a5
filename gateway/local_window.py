"""The same rolling-minute bucket counter as the Redis script, in this process's memory.

Used while Redis cannot answer (degraded mode), with each replica holding its share of the
plan limit, and by nothing else. Memory: at most `window/bucket + 1` buckets per subject and
at most `max_subjects` subjects (the least recently seen are dropped first).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Counter:
    buckets: deque[list[int]] = field(default_factory=deque)  # [bucket index, count], oldest first
    total: int = 0
    episode_end_ms: int = 0


@dataclass(frozen=True)
class LocalResult:
    allowed: bool
    remaining: int
    retry_after_ms: int
    reset_ms: int
    first_refusal: bool


class LocalWindow:
    def __init__(
        self,
        window_ms: int,
        bucket_ms: int,
        max_subjects: int = 100_000,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._window = window_ms
        self._bucket = bucket_ms
        self._span = window_ms // bucket_ms
        self._max = max_subjects
        self._clock = clock_ms or (lambda: int(time.monotonic() * 1000))
        self._counters: OrderedDict[str, _Counter] = OrderedDict()

    def hit(self, key: str, limit: int) -> LocalResult:
        now = self._clock()
        cur = now // self._bucket
        first = cur - self._span
        counter = self._counters.pop(key, None) or _Counter()
        self._counters[key] = counter  # most recently used last
        while len(self._counters) > self._max:
            self._counters.popitem(last=False)
        while counter.buckets and counter.buckets[0][0] < first:
            counter.total -= counter.buckets.popleft()[1]
        if counter.total + 1 > limit:
            need, freed, frees_at = counter.total + 1 - limit, 0, cur
            for index, count in counter.buckets:
                freed += count
                if freed >= need:
                    frees_at = index
                    break
            retry = (frees_at + self._span + 1) * self._bucket - now
            first_refusal = counter.episode_end_ms <= now
            if first_refusal:
                counter.episode_end_ms = now + retry
            return LocalResult(False, 0, retry, retry, first_refusal)
        if counter.buckets and counter.buckets[-1][0] == cur:
            counter.buckets[-1][1] += 1
        else:
            counter.buckets.append([cur, 1])
        counter.total += 1
        reset = (counter.buckets[0][0] + self._span + 1) * self._bucket - now
        return LocalResult(True, limit - counter.total, 0, reset, False)

    def __len__(self) -> int:
        return len(self._counters)


def share_of(limit: int, replicas: int) -> int:
    """A replica's share of a limit while replicas cannot count together (at least 1)."""
    return max(1, math.floor(limit / max(1, replicas)))
