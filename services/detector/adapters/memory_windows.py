"""Windows in process memory: for tests and a single detector that may forget on restart.
Checked by the same contract tests as the Redis store."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from services.detector.domain.rules import Observation, Window
from services.detector.ports import Added, Claim

MAX_SUBJECTS = 100_000


class MemoryWindowStore:
    def __init__(self) -> None:
        self._windows: OrderedDict[str, Window] = OrderedDict()
        self._quiet: dict[str, tuple[datetime, str, str]] = {}

    async def add(self, key: str, obs: Observation, window_seconds: int) -> Added:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(window_seconds)
            if len(self._windows) > MAX_SUBJECTS:
                self._windows.popitem(last=False)  # forget the least recently active subject
        self._windows.move_to_end(key)
        if window.add(obs):
            return Added(list(window.entries), fresh=True, counts=True)
        counted = any(e.id == obs.id for e in window.entries)
        return Added(list(window.entries), fresh=False, counts=counted)

    async def claim(self, key: str, alert_id: str, event_id: str, at: datetime, quiet_until: datetime) -> Claim:
        held = self._quiet.get(key)
        if held is not None and at < held[0]:
            return Claim(held[1], held[2], new=False)
        self._quiet[key] = (quiet_until, alert_id, event_id)
        return Claim(alert_id, event_id, new=True)

    def tracked(self) -> int:
        return len(self._windows)
