"""Automatic responses to alerts, switchable per rule in configuration.

`DEELRX_DETECTOR_RESPONSES` is JSON `{"<rule id>": ["<action>", ...]}`; a rule named there gets
exactly those actions (`[]` turns its responses off), the other rules keep DEFAULT_RESPONSES.
Actions, and where each is carried out:

- `lock_account`: identity.LockAccount holds the account the alert is about (`user:` or an
  unknown identifier's `subject:` hash) for DEELRX_DETECTOR_LOCK_MINUTES; its password logins
  answer `account_locked` like the lockout, and the hold ends by itself.
- `revoke_session`: sessions.RevokeSession for an alert about one session (reason
  `security:<rule>`), which ends it on every gateway at once.
- `require_mfa`: identity.RequireMfa for the account(s) concerned: the next password login
  must pass a second factor (TOTP, or a mailed code for users without TOTP).
- `notify_owners`: identity.NotifyTeamOwners mails the owners (from rbac) of the alert's team,
  or of every team the accounts concerned are members of (the teams that see the alert).

Each performing service records its own audit event through its outbox (`auth.account_locked`,
`session.revoked`, `auth.mfa_step_required`, `security.owners_notified`), and the detector adds
`security.response_taken` (rule, alert id, action, target) with an id derived from the alert
and the action. The responses run from the detector's consumer of the ALERTS stream
(adapters/nats_events.py, AlertResponsesFeed), not where alerts are raised. Identity applies
each (alert, action) once, so a redelivered alert (or a second detector) neither locks twice
nor mails twice; a failure leaves the alert unacknowledged and the responses are tried again.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

import grpc
import structlog

from deelrx.audit.v1 import audit_pb2
from deelrx.common.v1 import common_pb2
from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.audit_events import new_event
from deelrx_kit.clock import Clock
from deelrx_kit.ids import derived_id
from deelrx_kit.timestamps import to_timestamp
from services.detector.domain.rules import RULE_IDS, RaisedAlert

log = structlog.get_logger(__name__)

ACTIONS = ("lock_account", "revoke_session", "require_mfa", "notify_owners")
MAX_ACCOUNTS = 50  # accounts of one alert that get require_mfa (a stuffing network's list)
MAX_TEAMS = 20

# Defaults and why (docs/security.md, "Automatic responses"):
# - account attacks that guess credentials (brute_force, credential_stuffing, mfa_guessing):
#   hold the account, as OWASP's authentication cheat sheet advises for a detected attack,
#   for the 15 minutes of the lockout of docs/api.md; stuffing also demands a second factor,
#   since the list may hold the right password (NIST SP 800-63B 5.2.2 / ASVS 6.3);
# - stolen tokens or sessions (refresh_token_reuse, session_anomaly): end the session where the
#   alert names one and demand a second factor (RFC 9700 4.14.2: treat the token as stolen);
# - every rule but new_device (low, the user is mailed already): tell the team's owners.
DEFAULT_RESPONSES: dict[str, tuple[str, ...]] = {
    "brute_force": ("lock_account", "notify_owners"),
    "password_spray": ("notify_owners",),
    "credential_stuffing": ("lock_account", "require_mfa", "notify_owners"),
    "mfa_guessing": ("lock_account", "notify_owners"),
    "refresh_token_reuse": ("require_mfa", "notify_owners"),
    "new_device": (),
    "session_anomaly": ("revoke_session", "require_mfa", "notify_owners"),
    "privilege_escalation": ("notify_owners",),
    "mass_export": ("notify_owners",),
}


def parse_responses(text: str) -> dict[str, tuple[str, ...]]:
    """DEFAULT_RESPONSES with the configured rules replaced."""
    out = dict(DEFAULT_RESPONSES)
    if not text.strip():
        return out
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("DEELRX_DETECTOR_RESPONSES must be a JSON object")
    for rule, actions in raw.items():
        if rule not in RULE_IDS:
            raise ValueError(f"unknown rule in DEELRX_DETECTOR_RESPONSES: {rule}")
        if not isinstance(actions, list) or any(a not in ACTIONS for a in actions):
            raise ValueError(f"{rule}: actions must be a list of {list(ACTIONS)}")
        out[rule] = tuple(dict.fromkeys(actions))
    return out


class SessionsStub(Protocol):
    def RevokeSession(self, request: sessions_pb2.RevokeSessionRequest, timeout: float) -> Awaitable[Any]: ...


class IdentityStub(Protocol):
    def LockAccount(self, request: identity_pb2.LockAccountRequest, timeout: float) -> Awaitable[Any]: ...

    def RequireMfa(self, request: identity_pb2.RequireMfaRequest, timeout: float) -> Awaitable[Any]: ...

    def NotifyTeamOwners(self, request: identity_pb2.NotifyTeamOwnersRequest, timeout: float) -> Awaitable[Any]: ...


class RbacStub(Protocol):
    def ListMembers(self, request: rbac_pb2.ListMembersRequest, timeout: float) -> Awaitable[Any]: ...

    def ListMemberships(self, request: rbac_pb2.ListMembershipsRequest, timeout: float) -> Awaitable[Any]: ...


def _ignore_not_found(exc: grpc.aio.AioRpcError) -> None:
    """An account or session gone meanwhile needs no response; anything else is retried."""
    if exc.code() != grpc.StatusCode.NOT_FOUND:
        raise exc


class Responses:
    def __init__(
        self,
        config: Mapping[str, Sequence[str]],
        sessions: SessionsStub | None,
        record: Callable[[audit_pb2.AuditEvent], Awaitable[None]],
        clock: Clock,
        *,
        identity: IdentityStub | None = None,
        rbac: RbacStub | None = None,
        lock_for: timedelta = timedelta(minutes=15),
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.identity = identity
        self.rbac = rbac
        self.record = record
        self.clock = clock
        self.lock_for = lock_for

    def _context(self, alert: RaisedAlert) -> common_pb2.RequestContext:
        return common_pb2.RequestContext(request_id=alert.id)

    def _accounts(self, alert: RaisedAlert) -> list[str]:
        """The known accounts an alert is about: its `user:` subject, else its users."""
        if alert.subject.startswith("user:"):
            return [alert.subject.removeprefix("user:")]
        return list(alert.user_ids)[:MAX_ACCOUNTS]

    async def respond(self, alert: RaisedAlert) -> list[str]:
        taken = []
        for action in self.config.get(alert.rule, ()):
            targets = await getattr(self, f"_{action}")(alert)
            for target in targets:
                await self._record(alert, action, target)
            if targets:
                taken.append(action)
        return taken

    async def _revoke_session(self, alert: RaisedAlert) -> list[tuple[str, str]]:
        if self.sessions is None or not alert.subject.startswith("session:"):
            return []
        session_id = alert.subject.removeprefix("session:")
        try:
            await self.sessions.RevokeSession(
                sessions_pb2.RevokeSessionRequest(
                    context=self._context(alert), session_id=session_id, reason=f"security:{alert.rule}"
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            _ignore_not_found(exc)  # else the message is redelivered and the response tried again
        return [("session", session_id)]

    async def _lock_account(self, alert: RaisedAlert) -> list[tuple[str, str]]:
        if self.identity is None:
            return []
        kind, _, value = alert.subject.partition(":")
        if kind not in ("user", "subject") or not value:
            return []  # an IP or a network: not one account
        request = identity_pb2.LockAccountRequest(
            context=self._context(alert),
            alert_id=alert.id,
            until=to_timestamp(self.clock.now() + self.lock_for),
            reason=f"security:{alert.rule}",
        )
        if kind == "user":
            request.user_id = value
        else:
            request.subject_hash = value
        try:
            await self.identity.LockAccount(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            _ignore_not_found(exc)
        return [("user", value) if kind == "user" else ("subject", value)]

    async def _require_mfa(self, alert: RaisedAlert) -> list[tuple[str, str]]:
        if self.identity is None:
            return []
        done = []
        for user_id in self._accounts(alert):
            try:
                await self.identity.RequireMfa(
                    identity_pb2.RequireMfaRequest(
                        context=self._context(alert),
                        alert_id=alert.id,
                        user_id=user_id,
                        reason=f"security:{alert.rule}",
                    ),
                    timeout=5,
                )
            except grpc.aio.AioRpcError as exc:
                _ignore_not_found(exc)
                continue
            done.append(("user", user_id))
        return done

    async def _teams(self, alert: RaisedAlert) -> list[str]:
        """The alert's team, else the teams its accounts belong to (those that see it)."""
        if alert.team_id:
            return [alert.team_id]
        assert self.rbac is not None
        teams: dict[str, None] = {}
        for user_id in self._accounts(alert):
            try:
                found = await self.rbac.ListMemberships(rbac_pb2.ListMembershipsRequest(user_id=user_id), timeout=5)
            except grpc.aio.AioRpcError as exc:
                _ignore_not_found(exc)
                continue
            teams.update(dict.fromkeys(m.team_id for m in found.memberships))
        return list(teams)[:MAX_TEAMS]

    async def _notify_owners(self, alert: RaisedAlert) -> list[tuple[str, str]]:
        if self.identity is None or self.rbac is None:
            return []
        done = []
        for team_id in await self._teams(alert):
            try:
                members = await self.rbac.ListMembers(rbac_pb2.ListMembersRequest(team_id=team_id), timeout=5)
            except grpc.aio.AioRpcError as exc:
                _ignore_not_found(exc)
                continue
            owners = [m.user_id for m in members.members if m.role == "owner"]
            if not owners:
                continue
            try:
                await self.identity.NotifyTeamOwners(
                    identity_pb2.NotifyTeamOwnersRequest(
                        context=self._context(alert),
                        alert_id=alert.id,
                        team_id=team_id,
                        owner_user_ids=owners,
                        rule=alert.rule,
                        severity=alert.severity,
                        alert_time=to_timestamp(alert.time),
                    ),
                    timeout=5,
                )
            except grpc.aio.AioRpcError as exc:
                _ignore_not_found(exc)
                continue
            done.append(("team", team_id))
        return done

    async def _record(self, alert: RaisedAlert, action: str, target: tuple[str, str]) -> None:
        event = new_event(
            "security.response_taken",
            source="detector",
            now=self.clock.now(),
            team_id=target[1] if target[0] == "team" else alert.team_id,
            target=target,
            details={"rule": alert.rule, "alert_id": alert.id, "action": action},
        )
        event.id = derived_id("evt", alert.time, "security.response_taken", alert.id, action, *target)
        await self.record(event)
        log.info("security_response_taken", rule=alert.rule, alert_id=alert.id, action=action)
