"""AuthzClient: "may this user do this?" for CRM services, asked of the rbac service over gRPC.

- Round-robin over the rbac replicas; an unreachable replica is skipped for the next one.
- A decision cache, invalidated per team by the `rbac.changed.<team_id>` notices on NATS. The
  cache is used only while the NATS subscription is up; when it drops, every check asks rbac
  until it is back (then the cache starts empty).
- `at_least_revision`: a caller that has seen revision N of a team (e.g. from its own write)
  never gets a decision older than N.
- A deadline on every call, and fail closed: any error is a denial whose reason says why.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import grpc
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc

CHANGED_SUBJECT = "rbac.changed.>"
_PREFIX = "rbac.changed."


@dataclass(frozen=True)
class AuthzDecision:
    allowed: bool
    reason: str
    revision: int = 0
    cached: bool = False

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class CheckItem:
    user_id: str
    team_id: str
    permission: str
    resource: str = ""
    at_least_revision: int = 0


_Key = tuple[str, str, str, str]


class _TeamDecisions:
    __slots__ = ("decisions", "revision")

    def __init__(self) -> None:
        self.revision = 0  # newest revision heard of for this team
        self.decisions: dict[_Key, AuthzDecision] = {}


class AuthzClient:
    def __init__(
        self,
        targets: Sequence[str],
        *,
        nats_url: str | None = None,
        deadline_seconds: float = 0.5,
        max_cached_teams: int = 10_000,
        max_decisions_per_team: int = 10_000,
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str = "rbac",
    ) -> None:
        """`credentials`: mutual TLS (`grpc.ssl_channel_credentials` with the CRM service's
        certificate, whose Common Name must be `crm-service`); rbac's certificate must name
        `server_name`. Without it the channels are plaintext (loopback development only)."""
        if not targets:
            raise ValueError("at least one rbac address is needed")
        self._targets = list(targets)
        self._nats_url = nats_url
        self.deadline_seconds = deadline_seconds
        self._max_teams = max_cached_teams
        self._max_per_team = max_decisions_per_team
        self._credentials = credentials
        self._server_name = server_name
        self._channels: list[grpc.aio.Channel] = []
        self._stubs: list[rbac_pb2_grpc.RbacServiceStub] = []
        self._next = itertools.count()
        self._teams: OrderedDict[str, _TeamDecisions] = OrderedDict()
        self._nc: NATS | None = None
        self._feed_up = False
        self.calls = 0  # RPCs made (tests and metrics)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._credentials is None:
            self._channels = [grpc.aio.insecure_channel(t) for t in self._targets]
        else:
            options = [("grpc.ssl_target_name_override", self._server_name)]
            self._channels = [grpc.aio.secure_channel(t, self._credentials, options=options) for t in self._targets]
        self._stubs = [rbac_pb2_grpc.RbacServiceStub(c) for c in self._channels]
        if self._nats_url:
            await self._connect_feed(self._nats_url)

    async def _connect_feed(self, url: str) -> None:
        async def down() -> None:
            self._feed_up = False
            self._teams.clear()

        async def up() -> None:
            # Notices sent while we were away are lost: start from an empty cache.
            self._teams.clear()
            self._feed_up = True

        self._nc = NATS()
        await self._nc.connect(
            url,
            name="authz-client",
            max_reconnect_attempts=-1,
            # nats-py annotates an int but sleeps any number of seconds.
            reconnect_time_wait=0.5,  # type: ignore[arg-type]
            connect_timeout=2,
            disconnected_cb=down,
            reconnected_cb=up,
        )
        await self._nc.subscribe(CHANGED_SUBJECT, cb=self._on_change)
        await self._nc.flush()
        self._feed_up = True

    async def close(self) -> None:
        self._feed_up = False
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        for channel in self._channels:
            await channel.close()

    async def __aenter__(self) -> AuthzClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- change notices -----------------------------------------------------------------
    async def _on_change(self, msg: Msg) -> None:
        try:
            notice = rbac_pb2.AuthorizationChanged.FromString(msg.data)
            team_id = notice.team_id or msg.subject.removeprefix(_PREFIX)
            revision = notice.revision
        except Exception:  # noqa: BLE001 - unreadable notice: forget everything, stay correct
            self._teams.clear()
            return
        self.changed(team_id, revision)

    def changed(self, team_id: str, revision: int) -> None:
        """Team `team_id` reached `revision`: drop every decision taken before it."""
        team = self._teams.get(team_id)
        if team is None:
            team = self._team(team_id)
        if revision > team.revision:
            team.revision = revision
            team.decisions.clear()

    def _team(self, team_id: str) -> _TeamDecisions:
        team = self._teams.get(team_id)
        if team is None:
            team = self._teams[team_id] = _TeamDecisions()
            while len(self._teams) > self._max_teams:
                self._teams.popitem(last=False)
        return team

    # -- checks ---------------------------------------------------------------------------
    async def check(
        self, user_id: str, team_id: str, permission: str, resource: str = "", *, at_least_revision: int = 0
    ) -> AuthzDecision:
        return (await self.check_many([CheckItem(user_id, team_id, permission, resource, at_least_revision)]))[0]

    async def allowed(self, user_id: str, team_id: str, permission: str, resource: str = "", **kw: int) -> bool:
        return (await self.check(user_id, team_id, permission, resource, **kw)).allowed

    async def check_many(self, items: Iterable[CheckItem]) -> list[AuthzDecision]:
        """Answers in order; cached ones from memory, the rest in one BatchCheck (<= 100 each)."""
        wanted = list(items)
        answers: list[AuthzDecision | None] = [self._cached(item) for item in wanted]
        missing = [i for i, a in enumerate(answers) if a is None]
        for start in range(0, len(missing), 100):
            chunk = missing[start : start + 100]
            fresh = await self._ask([wanted[i] for i in chunk])
            for i, decision in zip(chunk, fresh, strict=True):
                answers[i] = decision
                self._remember(wanted[i], decision)
        return [a for a in answers if a is not None]

    def _cached(self, item: CheckItem) -> AuthzDecision | None:
        if not self._feed_up:
            return None
        team = self._teams.get(item.team_id)
        if team is None:
            return None
        decision = team.decisions.get((item.user_id, item.team_id, item.permission, item.resource))
        if decision is None or decision.revision < max(item.at_least_revision, team.revision):
            return None
        return AuthzDecision(decision.allowed, decision.reason, decision.revision, cached=True)

    def _remember(self, item: CheckItem, decision: AuthzDecision) -> None:
        if not self._feed_up or decision.revision <= 0:
            return  # failures and answers without a revision are never cached
        team = self._team(item.team_id)
        if decision.revision < team.revision:
            return  # a change was announced while this answer was on its way
        if decision.revision > team.revision:
            # rbac answered from a revision we had not heard of: older decisions are stale.
            team.revision = decision.revision
            team.decisions.clear()
        if len(team.decisions) >= self._max_per_team:
            team.decisions.clear()
        team.decisions[(item.user_id, item.team_id, item.permission, item.resource)] = decision

    def _min_revision(self, item: CheckItem) -> int:
        team = self._teams.get(item.team_id)
        return max(item.at_least_revision, team.revision if team else 0)

    async def _ask(self, items: list[CheckItem]) -> list[AuthzDecision]:
        requests = [
            rbac_pb2.CheckRequest(
                user_id=i.user_id,
                team_id=i.team_id,
                permission=i.permission,
                resource=i.resource,
                min_revision=self._min_revision(i),
            )
            for i in items
        ]
        try:
            if len(requests) == 1:
                reply = await self._call("Check", requests[0])
                return [AuthzDecision(reply.allowed, reply.reason, reply.revision)]
            batch = await self._call("BatchCheck", rbac_pb2.BatchCheckRequest(checks=requests))
            if len(batch.results) != len(requests):
                raise RuntimeError("rbac answered a different number of checks")
            return [AuthzDecision(r.allowed, r.reason, r.revision) for r in batch.results]
        except grpc.aio.AioRpcError as exc:
            reason = f"authorization unavailable: {exc.code().name.lower()}"
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                reason = f"invalid check: {exc.details()}"
            return [AuthzDecision(False, reason) for _ in items]
        except Exception as exc:  # noqa: BLE001 - fail closed on anything
            return [AuthzDecision(False, f"authorization unavailable: {type(exc).__name__}") for _ in items]

    @overload
    async def _call(self, method: Literal["Check"], request: rbac_pb2.CheckRequest) -> rbac_pb2.CheckResponse: ...

    @overload
    async def _call(
        self, method: Literal["BatchCheck"], request: rbac_pb2.BatchCheckRequest
    ) -> rbac_pb2.BatchCheckResponse: ...

    async def _call(self, method: str, request: object) -> Any:
        """One replica after another (round-robin), within one overall deadline."""
        if not self._stubs:
            raise RuntimeError("AuthzClient.start() was not called")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_seconds
        first = next(self._next)
        last_error: grpc.aio.AioRpcError | None = None
        for attempt in range(len(self._stubs)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            stub = self._stubs[(first + attempt) % len(self._stubs)]
            self.calls += 1
            try:
                return await getattr(stub, method)(request, timeout=remaining)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                last_error = exc
        if last_error is not None:
            raise last_error
        raise TimeoutError("deadline exceeded")
