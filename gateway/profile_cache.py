"""What `GET /v1/auth/me` answers, kept in the gateway: user profiles, session summaries, teams
and memberships (role and permissions), each in a bounded LRU (`DEELRX_ME_CACHE_ENTRIES` per
part), filled on a miss by the same gRPC reads /me made before.

An entry is used only while all of these hold (docs/architecture.md, docs/security.md):
- the change revisions it was loaded under are still the ones Redis holds, read in the request's
  rate-limit round trip (gateway/change_revisions.py): any write through any replica is seen
  by the next request. Without them (Redis not asked or unreachable) nothing is served from
  memory;
- no NATS notice about it arrived since (gateway/change_feed.py): changes made behind the
  gateway (another service, an operator) are seen within the notice's propagation;
- for a session summary, the caller's access token was issued before the entry was loaded: a
  refresh or re-authentication (which move `idle_expires_at`, `amr`) mints a new token, whose
  first /me loads the session again;
- it is younger than ENTRY_TTL_SECONDS, a safety net, not the mechanism; while the NATS feed
  is down (and until it is connected again), younger than ENTRY_TTL_WITHOUT_FEED_SECONDS, since
  notices are then lost. Every entry is dropped when the feed (re)connects.
A load that was under way when a notice arrived is not kept (the epoch counter).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter

from deelrx.identity.v1 import identity_pb2
from deelrx.rbac.v1 import rbac_pb2
from deelrx.sessions.v1 import sessions_pb2
from deelrx_kit.errors import DomainError
from gateway.clients import ServiceClients, call
from gateway.presenters import session_json, user_json

ENTRY_TTL_SECONDS = 300.0
# While no notice can arrive: how stale a change made behind the gateway may be seen.
ENTRY_TTL_WITHOUT_FEED_SECONDS = 5.0

LOOKUPS = Counter(
    "deelrx_me_cache_lookups_total",
    "Lookups of /v1/auth/me's caches by part and outcome (hit, miss, bypass: revisions unknown)",
    ["part", "outcome"],
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Revisions = tuple[str, ...]


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    revisions: Revisions
    loaded_at: float  # monotonic
    loaded_from: float  # wall clock when the load started (sessions: compared with token iat)


class Lru(Generic[K, V]):
    """A bounded map that forgets the least recently used entry first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def drop_where(self, predicate: Callable[[K], bool]) -> None:
        for key in [k for k in self._items if predicate(k)]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Caller:
    user_id: str
    session_id: str
    team_id: str | None
    token_issued_at: int
    # Values of gateway.change_revisions.keys_for(user_id, team_id), or None when unknown.
    revisions: Revisions | None


Membership = tuple[str, tuple[str, ...]] | None  # (role, permissions), None: not a member


@dataclass(frozen=True)
class Loaders:
    """Where misses are read from (grpc_loaders(): the services)."""

    user: Callable[[str], Awaitable[dict[str, Any]]]
    session: Callable[[str], Awaitable[dict[str, Any]]]  # raises session_expired when revoked
    team: Callable[[str], Awaitable[dict[str, str]]]  # {} when unknown
    membership: Callable[[str, str], Awaitable[Membership]]


def grpc_loaders(clients: ServiceClients) -> Loaders:
    """The reads /me made on every request before it had a cache."""

    async def user(user_id: str) -> dict[str, Any]:
        reply = await call(clients.identity.GetUser, identity_pb2.GetUserRequest(user_id=user_id))
        return user_json(reply.user)

    async def session(session_id: str) -> dict[str, Any]:
        reply = await call(clients.sessions.GetSession, sessions_pb2.GetSessionRequest(session_id=session_id))
        if reply.session.revoked:
            raise DomainError("session_expired", "The session was revoked")
        return session_json(reply.session)

    async def team(team_id: str) -> dict[str, str]:
        reply = await call(clients.identity.GetTeams, identity_pb2.GetTeamsRequest(team_ids=[team_id]))
        if not reply.teams:
            return {}
        found = reply.teams[0]
        return {"id": found.id, "name": found.name, "plan": found.plan}

    async def membership(user_id: str, team_id: str) -> Membership:
        try:
            reply = await call(
                clients.rbac.GetMembership, rbac_pb2.GetMembershipRequest(user_id=user_id, team_id=team_id)
            )
        except DomainError as exc:
            if exc.code == "not_found":  # no longer a member: no active team
                return None
            raise
        return reply.membership.role, tuple(sorted(reply.membership.permissions))

    return Loaders(user, session, team, membership)


_MISS = object()


@dataclass(frozen=True)
class _Lookup:
    part: str
    lru: Lru[Any, _Entry[Any]]
    key: Any
    revisions: Revisions | None  # None: unknown, so neither read nor kept
    load: Callable[[], Awaitable[Any]]
    issued_at: int | None = None  # sessions: the caller's token `iat`


class ProfileCache:
    def __init__(
        self,
        loaders: Loaders,
        max_entries: int,
        *,
        ttl: float = ENTRY_TTL_SECONDS,
        ttl_without_feed: float = ENTRY_TTL_WITHOUT_FEED_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._load = loaders
        self._ttl = ttl
        self._ttl_without_feed = ttl_without_feed
        # Set by gateway/change_feed.py: False until the feed is connected, and while it is down.
        self.feed_healthy = False
        self._monotonic = monotonic
        self._wall = wall
        self.users: Lru[str, _Entry[dict[str, Any]]] = Lru(max_entries)
        self.sessions: Lru[str, _Entry[dict[str, Any]]] = Lru(max_entries)
        self.teams: Lru[str, _Entry[dict[str, str]]] = Lru(max_entries)
        self.memberships: Lru[tuple[str, str], _Entry[Membership]] = Lru(max_entries)
        self._epoch = 0  # moves at every invalidation: loads that straddle one are not kept

    # -- reading ----------------------------------------------------------------------------
    async def me(self, caller: Caller) -> dict[str, Any]:
        """The /v1/auth/me body for this caller. A warm answer awaits nothing."""
        revs = caller.revisions
        urev, trev = (revs[:1], revs[1:]) if revs is not None else (None, None)
        uid, sid, tid = caller.user_id, caller.session_id, caller.team_id
        lookups: list[_Lookup] = [
            _Lookup("user", self.users, uid, urev, lambda: self._load.user(uid)),
            _Lookup("session", self.sessions, sid, urev, lambda: self._load.session(sid), caller.token_issued_at),
        ]
        if tid:
            lookups.append(_Lookup("team", self.teams, tid, trev, lambda: self._load.team(tid)))
            lookups.append(
                _Lookup("membership", self.memberships, (uid, tid), revs, lambda: self._load.membership(uid, tid))
            )
        values = [self._peek(lookup) for lookup in lookups]
        missing = [i for i, value in enumerate(values) if value is _MISS]
        if missing:
            loaded = await asyncio.gather(*(self._fill(lookups[i]) for i in missing))
            for i, value in zip(missing, loaded, strict=True):
                values[i] = value
        user, session = values[0], values[1]
        if not tid or values[3] is None or not values[2]:  # no team, or no longer a member
            return {"user": user, "session": session, "team": None, "permissions": []}
        role, permissions = values[3]
        return {"user": user, "session": session, "team": {**values[2], "role": role}, "permissions": list(permissions)}

    def _peek(self, lookup: _Lookup) -> Any:
        if lookup.revisions is None:
            LOOKUPS.labels(lookup.part, "bypass").inc()
            return _MISS
        hit = lookup.lru.get(lookup.key)
        if hit is not None and self._usable(hit, lookup.revisions, lookup.issued_at):
            LOOKUPS.labels(lookup.part, "hit").inc()
            return hit.value
        LOOKUPS.labels(lookup.part, "miss").inc()
        return _MISS

    async def _fill(self, lookup: _Lookup) -> Any:
        epoch, started, loaded_from = self._epoch, self._monotonic(), self._wall()
        value = await lookup.load()
        if lookup.revisions is not None and epoch == self._epoch:
            lookup.lru.put(lookup.key, _Entry(value, lookup.revisions, started, loaded_from))
        return value

    def _usable(self, entry: _Entry[Any], revisions: Revisions, issued_at: int | None) -> bool:
        ttl = self._ttl if self.feed_healthy else self._ttl_without_feed
        if entry.revisions != revisions or self._monotonic() - entry.loaded_at >= ttl:
            return False
        # `iat` has a resolution of a second: a token from the second the load started in
        # may have come from a refresh the load did not see, so it loads again.
        return issued_at is None or issued_at < int(entry.loaded_from)

    # -- invalidation (gateway/change_feed.py) ----------------------------------------------
    def user_changed(self, user_id: str) -> None:
        self._epoch += 1
        self.users.pop(user_id)
        self.memberships.drop_where(lambda k: k[0] == user_id)

    def team_changed(self, team_id: str) -> None:
        """The team's name or plan (identity's `teams.changed`)."""
        self._epoch += 1
        self.teams.pop(team_id)

    def membership_changed(self, team_id: str, user_id: str = "") -> None:
        """One member's role, or every member's permissions (rbac's `rbac.changed.<team>`)."""
        self._epoch += 1
        if user_id:
            self.memberships.pop((user_id, team_id))
        else:
            self.memberships.drop_where(lambda k: k[1] == team_id)

    def sessions_ended(self, session_ids: list[str]) -> None:
        self._epoch += 1
        for session_id in session_ids:
            self.sessions.pop(session_id)

    def clear(self) -> None:
        """Notices may have been missed (NATS reconnected): forget everything."""
        self._epoch += 1
        for lru in (self.users, self.sessions, self.teams, self.memberships):
            lru.clear()
