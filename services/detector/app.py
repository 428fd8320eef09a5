"""Detector use case: feed each audit event to the rules, send what they raise."""

from __future__ import annotations

import structlog

from services.detector.domain.rules import Observation, RuleEngine, RuleSpec
from services.detector.ports import AlertSink

log = structlog.get_logger(__name__)


class Detector:
    def __init__(self, engine: RuleEngine, sink: AlertSink) -> None:
        self.engine = engine
        self.sink = sink

    @property
    def rules(self) -> list[RuleSpec]:
        return self.engine.specs

    async def observe(self, obs: Observation) -> None:
        for alert in self.engine.observe(obs):
            log.info("alert_raised", rule=alert.rule, alert_id=alert.id, severity=alert.severity, team_id=alert.team_id)
            await self.sink.publish(alert)
