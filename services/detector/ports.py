from __future__ import annotations

from typing import Protocol

from services.detector.domain.rules import RaisedAlert


class AlertSink(Protocol):
    async def publish(self, alert: RaisedAlert) -> None:
        """Deliver the alert (and its `security.alert_raised` audit event) at least once."""
