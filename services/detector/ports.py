from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.detector.domain.rules import Observation, RaisedAlert


class AlertSink(Protocol):
    async def publish(self, alert: RaisedAlert) -> None:
        """Deliver the alert (and its `security.alert_raised` audit event) at least once."""


class AlertResponses(Protocol):
    async def respond(self, alert: RaisedAlert) -> list[str]:
        """Take the automatic responses configured for the alert's rule; the actions taken."""


@dataclass(frozen=True)
class Added:
    """The window after adding an observation."""

    entries: list[Observation]  # in time order, the new one included when it counts
    fresh: bool  # False when this event id was counted before (a redelivery)
    counts: bool  # False when the observation is too old for the window


@dataclass(frozen=True)
class Claim:
    alert_id: str  # the alert that holds the subject's quiet period
    event_id: str  # the event that raised it
    new: bool  # True when this call took it


class WindowStore(Protocol):
    """Sliding windows and quiet periods shared by every detector replica.

    `add` is idempotent per event id; `claim` is atomic: of several replicas seeing the
    same trigger, one gets `new=True`.
    """

    async def add(self, key: str, obs: Observation, window_seconds: int) -> Added: ...

    async def claim(self, key: str, alert_id: str, event_id: str, at: datetime, quiet_until: datetime) -> Claim: ...
