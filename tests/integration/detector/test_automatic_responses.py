"""Automatic responses against the real services: identity (holds, mail), rbac (owners),
sessions, the detector's Redis windows, NATS and the audit service.

Per rule, a response fires when the configuration enables it and not when it disables it;
and a brute force replayed through the whole pipeline (wrong passwords at identity -> outbox ->
JetStream -> detector -> security.alerts -> the detector's responses -> identity) ends with
the account held, the owners mailed and every response stored as an audit event."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nats.aio.msg import Msg
from redis.asyncio import Redis

from deelrx.audit.v1 import audit_pb2, audit_pb2_grpc
from deelrx.identity.v1 import identity_pb2 as pb
from deelrx.identity.v1 import identity_pb2_grpc
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx.sessions.v1 import sessions_pb2_grpc
from deelrx_kit import nats_bus
from deelrx_kit.clock import FrozenClock, SystemClock
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deelrx_kit.runtime import ServiceRuntime
from deelrx_kit.timestamps import to_timestamp
from services.audit.main import bootstrap as audit_bootstrap
from services.detector.adapters.nats_events import AlertResponsesFeed, security_alert
from services.detector.adapters.redis_windows import RedisWindowStore
from services.detector.app import Detector
from services.detector.domain.rules import Observation, RaisedAlert, RuleSet
from services.detector.main import bootstrap as detector_bootstrap
from services.detector.responses import Responses, parse_responses
from services.rbac.main import bootstrap as rbac_bootstrap
from services.sessions.main import bootstrap as sessions_bootstrap
from tests.integration.harness import eventually
from tests.integration.identity.conftest import PASSWORD, Identity, call, ctx, make_settings, start_identity

OWNER_NOTICE = "security alert"


class Collected:
    def __init__(self) -> None:
        self.alerts: list[RaisedAlert] = []
        self.events: list[audit_pb2.AuditEvent] = []

    async def publish(self, alert: RaisedAlert) -> None:
        self.alerts.append(alert)

    async def record(self, event: audit_pb2.AuditEvent) -> None:
        self.events.append(event)


@dataclass
class Services:
    identity: Identity
    rbac: rbac_pb2_grpc.RbacServiceStub
    sessions: sessions_pb2_grpc.SessionsServiceStub
    settings: Any
    runtimes: list[ServiceRuntime]

    async def team_with_owner(self, member: str) -> tuple[str, str, str]:
        """A team (identity record and rbac memberships): (team id, owner id, owner email)."""
        email = f"owner.{uuid.uuid4().hex[:8]}@example.com"
        owner = await self.identity.account(email, name="Olive Owner")
        team = await call(
            self.identity.stub.CreateTeam, pb.CreateTeamRequest(context=ctx(), owner_user_id=owner, name="Acme")
        )
        tid = team.team.id
        for user, role, op in ((owner, "owner", tid), (member, "staff", new_id("inv"))):
            await self.rbac.AddMember(
                rbac_pb2.AddMemberRequest(context=ctx(), team_id=tid, user_id=user, role=role, operation_id=op)
            )
        return tid, owner, email

    async def owner_notices(self, email: str, expected: int) -> list[Any]:
        """At least `expected` security notices to `email` (after the mail every new account gets)."""
        # Outbox -> JetStream -> detector -> identity -> mail relay: seconds on a busy 2-core host.
        mails = await self.identity.mails_to(email, 1 + expected, timeout=30)
        return [m for m in mails if OWNER_NOTICE in str(m["Subject"])]

    async def notices_before_sentinel(self, email: str, tid: str, owner: str) -> list[Any]:
        """The security notices `email` got before a sentinel notice (rule mass_export) sent now:
        mails go out in the order they were staged, so whatever was mailed before is there too."""
        sentinel = pb.NotifyTeamOwnersRequest(
            context=ctx(),
            alert_id=new_id("alr"),
            team_id=tid,
            owner_user_ids=[owner],
            rule="mass_export",
            severity="low",
            alert_time=to_timestamp(datetime.now(UTC)),
        )
        assert (await call(self.identity.stub.NotifyTeamOwners, sentinel)).mailed == 1

        def notices() -> list[tuple[Any, str]]:
            mails = [m for m in self.identity.read_mails_to(email) if OWNER_NOTICE in str(m["Subject"])]
            return [(m, m.get_body(("plain",)).get_content()) for m in mails]

        found = await eventually(notices, lambda ns: any("mass_export" in body for _, body in ns), 10)
        return [m for m, body in found if "mass_export" not in body]


@pytest.fixture
async def services(tmp_path: Path, nats_url: str, redis_url: str, nats_client: Any) -> AsyncIterator[Services]:
    await nats_bus.ensure_streams(nats_client.jetstream())
    base = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}", nats_url, redis_url)
    clock = FrozenClock(datetime.now(UTC))
    id_rt, id_channel = await start_identity(base, clock)
    runtimes: list[ServiceRuntime] = [id_rt]
    stubs: dict[str, Any] = {}
    for name, boot in (("rbac", rbac_bootstrap), ("sessions", sessions_bootstrap)):
        settings = base.model_copy(update={"database_url": f"sqlite+aiosqlite:///{tmp_path / name}.db"})
        rt = boot(settings, grpc_port=0)
        await rt.start()
        runtimes.append(rt)
        stubs[name] = channel(f"127.0.0.1:{rt.grpc.port}")
    identity = Identity(id_rt, identity_pb2_grpc.IdentityServiceStub(id_channel), base, clock, tmp_path / "mail")
    try:
        yield Services(
            identity,
            rbac_pb2_grpc.RbacServiceStub(stubs["rbac"]),
            sessions_pb2_grpc.SessionsServiceStub(stubs["sessions"]),
            base,
            runtimes,
        )
    finally:
        for ch in [id_channel, *stubs.values()]:
            await ch.close()
        for rt in reversed(runtimes):
            await rt.stop()


async def _detect(services: Services, redis_url: str, config: str, observations: list[Observation]) -> Collected:
    """Observations through a detector (its windows in Redis), then the alerts it raised, as
    read back from `security.alerts`, through the responses wired to the real services."""
    sink = Collected()
    redis = Redis.from_url(redis_url)
    detector = Detector(RuleSet(), RedisWindowStore(redis, prefix=f"t:{uuid.uuid4().hex}:"), sink)
    try:
        for obs in observations:
            await detector.observe(obs)
    finally:
        await redis.aclose()
    responses = Responses(
        parse_responses(config),
        services.sessions,
        sink.record,
        SystemClock(),
        identity=services.identity.stub,
        rbac=services.rbac,
    )
    feed = AlertResponsesFeed(responses)
    for alert in sink.alerts:
        data = security_alert(alert).SerializeToString()
        await feed.on_alert(Msg(_client=None, subject=nats_bus.ALERTS_SUBJECT, data=data))
    return sink


def _failures(user: str, ips: list[str]) -> list[Observation]:
    t = datetime.now(UTC)
    return [
        Observation(id=new_id("evt"), time=t + timedelta(seconds=i), type="auth.login_failed", user_id=user, ip=ip)
        for i, ip in enumerate(ips)
    ]


def _taken(sink: Collected) -> set[tuple[str, str, str]]:
    return {
        (e.details["action"], e.target.type, e.target.id) for e in sink.events if e.type == "security.response_taken"
    }


@pytest.mark.parametrize("enabled", [True, False])
async def test_brute_force_locks_the_account_and_mails_the_owners_when_enabled(
    services: Services, redis_url: str, enabled: bool
) -> None:
    email = f"victim.{uuid.uuid4().hex[:8]}@example.com"
    victim = await services.identity.account(email)
    tid, owner, owner_email = await services.team_with_owner(victim)
    config = "" if enabled else json.dumps({"brute_force": []})  # the default is lock + notify
    observations = _failures(victim, ["203.0.113.66"] * 10)
    sink = await _detect(services, redis_url, config, observations)
    assert [(a.rule, a.subject) for a in sink.alerts] == [("brute_force", f"user:{victim}")]
    if enabled:
        assert _taken(sink) == {("lock_account", "user", victim), ("notify_owners", "team", tid)}
        error = await services.identity.login_error(email, PASSWORD, ip="192.0.2.10")  # the right password
        assert error.code == "account_locked"
        assert len(await services.owner_notices(owner_email, 1)) == 1
        # The same alert again (a redelivery): no second lock event, no second mail.
        await _detect(services, redis_url, config, observations)
        assert len(await services.notices_before_sentinel(owner_email, tid, owner)) == 1
    else:
        assert _taken(sink) == set()
        assert (await services.identity.login(email, ip="192.0.2.10")).user.id == victim
        assert await services.notices_before_sentinel(owner_email, tid, owner) == []


@pytest.mark.parametrize("enabled", [True, False])
async def test_credential_stuffing_on_one_account_demands_a_second_factor_when_enabled(
    services: Services, redis_url: str, enabled: bool
) -> None:
    email = f"stuffed.{uuid.uuid4().hex[:8]}@example.com"
    victim = await services.identity.account(email)
    config = json.dumps({"credential_stuffing": ["require_mfa"] if enabled else [], "brute_force": []})
    # One account failing from five IPs within ten minutes (credential_stuffing.account).
    sink = await _detect(services, redis_url, config, _failures(victim, [f"198.51.100.{i}" for i in range(1, 6)]))
    assert ("credential_stuffing", f"user:{victim}") in {(a.rule, a.subject) for a in sink.alerts}
    login = await services.identity.login(email)
    assert login.mfa_required is enabled
    assert _taken(sink) == ({("require_mfa", "user", victim)} if enabled else set())


@pytest.mark.parametrize("enabled", [True, False])
async def test_session_anomaly_demands_a_second_factor_when_enabled(
    services: Services, redis_url: str, enabled: bool
) -> None:
    email = f"anomaly.{uuid.uuid4().hex[:8]}@example.com"
    user = await services.identity.account(email)
    config = json.dumps({"session_anomaly": ["require_mfa"] if enabled else []})
    session_id = new_id("ses")
    t = datetime.now(UTC)
    observations = [
        Observation(id=new_id("evt"), time=t + timedelta(seconds=s), type="session.refreshed", user_id=user,
                    session_id=session_id, ip=ip)
        for s, ip in ((0, "203.0.113.7"), (60, "198.51.100.40"))
    ]  # fmt: skip
    sink = await _detect(services, redis_url, config, observations)
    assert [a.rule for a in sink.alerts] == ["session_anomaly"]
    assert (await services.identity.login(email)).mfa_required is enabled


async def _stored(
    audit: audit_pb2_grpc.AuditServiceStub, wanted: set[str], timeout: float = 30.0, **query: Any
) -> set[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found: set[str] = set()
    while loop.time() < deadline:
        answer = await audit.QueryEvents(audit_pb2.QueryEventsRequest(**query))
        found = {e.type for e in answer.events}
        if wanted <= found:
            break
        await asyncio.sleep(0.2)
    return found


async def test_a_brute_force_through_the_pipeline_ends_locked_with_owners_mailed(
    services: Services, tmp_path: Path
) -> None:
    """Wrong passwords at identity -> outbox -> JetStream -> detector -> security.alerts -> its
    responses consumer (default responses) -> identity and rbac -> the account is held, the
    owners mailed, and audit stores it all."""
    identity = services.identity
    email = f"pipeline.{uuid.uuid4().hex[:8]}@example.com"
    victim = await identity.account(email)
    tid, owner, owner_email = await services.team_with_owner(victim)
    settings = services.settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
            "identity_addr": f"127.0.0.1:{services.runtimes[0].grpc.port}",
            "rbac_addr": f"127.0.0.1:{services.runtimes[1].grpc.port}",
            "sessions_addr": f"127.0.0.1:{services.runtimes[2].grpc.port}",
        }
    )
    detector = detector_bootstrap(settings, grpc_port=0)
    audit = audit_bootstrap(settings, grpc_port=0)
    await detector.start()
    await audit.start()
    audit_channel = channel(f"127.0.0.1:{audit.grpc.port}")
    try:
        for _ in range(10):
            assert (await identity.login_error(email, "wrong-password-guess", ip="203.0.113.66")).code in (
                "invalid_credentials",
                "account_locked",
            )
        notices = await services.owner_notices(owner_email, 1)
        assert len(notices) == 1, "the owner is mailed"
        body = notices[0].get_body(("plain",)).get_content()
        assert "brute_force" in body and "wrong-password-guess" not in body and "203.0.113.66" not in body
        # The account is held for every client, not only the guessing one, and from the right password.
        error = await identity.login_error(email, PASSWORD, ip="192.0.2.99")
        assert error.code == "account_locked" and error.retry_after_seconds > 0
        stub = audit_pb2_grpc.AuditServiceStub(audit_channel)
        team_types = {"security.owners_notified", "security.response_taken"}
        assert team_types <= await _stored(stub, team_types, team_id=tid)
        assert "auth.account_locked" in await _stored(stub, {"auth.account_locked"}, user_id=victim)
        _ = owner
    finally:
        await audit_channel.close()
        await audit.stop()
        await detector.stop()
