"""Detector use case: feed each audit event to the rules over shared windows, send what
they raise.

Per rule: the event is added to its subject's window (idempotent per event id); when the
window triggers, the subject's quiet period is claimed (atomic, so of several replicas one
raises the alert) for one window. When the event that raised an alert is delivered again,
the alert is sent again: the first attempt may have died before publishing, and the
derived alert id makes the copy harmless. The automatic responses are not run here: they read
the published alerts from their own consumer (adapters/nats_events.py, AlertResponsesFeed).
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from deelrx_kit.metrics import ALERTS_RAISED
from services.detector.domain.rules import (
    Observation,
    RaisedAlert,
    Rule,
    RuleSet,
    RuleSpec,
    alert_id_for,
    build_alert,
)
from services.detector.ports import AlertSink, WindowStore

log = structlog.get_logger(__name__)


class Detector:
    def __init__(self, rules: RuleSet, store: WindowStore, sink: AlertSink) -> None:
        self.ruleset = rules
        self.store = store
        self.sink = sink

    @property
    def rules(self) -> list[RuleSpec]:
        return [r.spec for r in self.ruleset.rules]

    async def evaluate(self, obs: Observation) -> list[RaisedAlert]:
        """The alerts this observation raises (without sending them)."""
        raised: list[RaisedAlert] = []
        for rule in self.ruleset.rules:
            if not rule.applies(obs):
                continue
            subject = rule.subject(obs)
            if subject:
                alert = await self._evaluate(rule, subject, obs)
                if alert is not None:
                    raised.append(alert)
        return raised

    async def _evaluate(self, rule: Rule, subject: str, obs: Observation) -> RaisedAlert | None:
        spec = rule.spec
        key = f"{spec.key}:{subject}"
        if spec.window_seconds <= 0:
            return build_alert(rule, subject, obs, [obs])  # the id derives from the event: no claim needed
        added = await self.store.add(key, obs, spec.window_seconds)
        if not added.counts or not rule.triggered(added.entries):
            return None
        alert_id = alert_id_for(spec, subject, obs)
        quiet_until = obs.time + timedelta(seconds=spec.window_seconds)
        claim = await self.store.claim(key, alert_id, obs.id, obs.time, quiet_until)
        if not claim.new and (added.fresh or claim.event_id != obs.id):
            return None
        return build_alert(rule, subject, obs, added.entries)

    async def observe(self, obs: Observation) -> None:
        for alert in await self.evaluate(obs):
            log.info("alert_raised", rule=alert.rule, alert_id=alert.id, severity=alert.severity, team_id=alert.team_id)
            await self.sink.publish(alert)
            ALERTS_RAISED.labels(alert.rule, alert.severity).inc()
