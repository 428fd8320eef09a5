"""Every action a user or an operator can take through the API produces its audit event.

The walk performs every state-changing operation (POST, PUT, PATCH, DELETE) of the gateway's
own /openapi.json once, successfully and with valid data, on the running suite, and then reads the
events back the way their readers do: a team's events through GET /v1/teams/{tid}/audit-events,
a user's own through GET /v1/me/security-activity, and the one event about an address without an
account (stored under a keyed hash, readable by no API) from the audit store. No event read may
carry, in its `details`, a password, token, code, secret or email address the walk used.

`EXPECTED` is the table operation -> event types. The first test fails when the OpenAPI document
has a state-changing operation the table does not name (a new route needs its event and a step
in the walk), or the table names one that is gone."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from deelrx_kit import db
from deelrx_kit.audit_events import keyed_hash
from services.audit.adapters import sql as audit_sql
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD
from tests.e2e.team_flows import INVITE_LINK
from tests.e2e.test_account_security import NEW_PASSWORD, RESET_RE, oathtool_code, wait_for_step
from tests.e2e.test_audit_http import alert, publish
from tests.integration.harness import wait_until

pytestmark = pytest.mark.e2e

VERIFY_LINK = r"/verify-email\?token=([A-Za-z0-9_\-]+)"
UNSAFE = ("post", "put", "patch", "delete")

# Operation -> the audit event types it records (every one must arrive).
EXPECTED: dict[str, tuple[str, ...]] = {
    # The account is created when the link is used: sign-up is recorded then, with the verification.
    "POST /v1/auth/signup": ("user.signed_up",),
    "POST /v1/auth/verify-email": ("user.email_verified",),
    "POST /v1/auth/verify-email/resend": ("user.verification_resent",),
    "POST /v1/auth/login": ("auth.login_succeeded", "session.created"),
    "POST /v1/auth/login/mfa": ("auth.mfa_succeeded", "auth.login_succeeded", "session.created"),
    "POST /v1/auth/refresh": ("session.refreshed",),
    "POST /v1/auth/logout": ("auth.logout", "session.revoked"),
    "POST /v1/auth/switch-team": ("session.team_switched",),
    "POST /v1/auth/reauthenticate": ("auth.reauthenticated",),
    "POST /v1/auth/password/forgot": ("password.reset_requested",),
    "POST /v1/auth/password/reset": ("password.reset",),
    "POST /v1/auth/password/change": ("password.changed",),
    "POST /v1/mfa/totp/enroll": ("mfa.enrollment_started",),
    "POST /v1/mfa/totp/confirm": ("mfa.enabled",),
    "DELETE /v1/mfa/totp": ("mfa.disabled",),
    "POST /v1/mfa/recovery-codes": ("mfa.recovery_codes_regenerated",),
    "DELETE /v1/sessions/{id}": ("session.revoked",),
    "DELETE /v1/sessions": ("session.revoked",),
    "POST /v1/teams": ("team.created", "member.joined"),
    "PATCH /v1/teams/{tid}": ("team.updated",),
    "PUT /v1/teams/{tid}/billing": ("billing.plan_changed",),
    "POST /v1/teams/{tid}/transfer-ownership": ("member.role_changed",),
    "PUT /v1/teams/{tid}/roles/{role}": ("roles.updated",),
    "PUT /v1/teams/{tid}/customers/{cid}/assignees/{uid}": ("customer.assigned",),
    "DELETE /v1/teams/{tid}/customers/{cid}/assignees/{uid}": ("customer.unassigned",),
    "PATCH /v1/teams/{tid}/members/{uid}": ("member.role_changed",),
    "DELETE /v1/teams/{tid}/members/{uid}": ("member.removed",),
    "DELETE /v1/teams/{tid}/members/{uid}/sessions": ("session.revoked",),
    "POST /v1/teams/{tid}/invitations": ("member.invited",),
    "DELETE /v1/teams/{tid}/invitations/{iid}": ("invitation.revoked",),
    "POST /v1/invitations/accept": ("invitation.accepted", "member.joined"),
    "PATCH /v1/teams/{tid}/security/alerts/{id}": ("security.alert_updated",),
}

# Operations on unsafe methods that change nothing, and why.
CHANGES_NOTHING: dict[str, str] = {
    "POST /v1/authz/check": "a question about the caller's own rights, with a body",
    # Forward auth for Envoy: the method is the original request's, the answer a verdict.
    "POST /v1/auth/verify/{original_path}": "forward-auth verdict",
    "PUT /v1/auth/verify/{original_path}": "forward-auth verdict",
    "PATCH /v1/auth/verify/{original_path}": "forward-auth verdict",
    "DELETE /v1/auth/verify/{original_path}": "forward-auth verdict",
}


def test_the_table_names_exactly_the_state_changing_operations(suite: RunningSuite) -> None:
    spec = httpx.get(f"{suite.base_url}/openapi.json", timeout=20).json()
    published = {
        f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item if method in UNSAFE
    }
    assert not set(EXPECTED) & set(CHANGES_NOTHING)
    unknown = published - set(EXPECTED) - set(CHANGES_NOTHING)
    assert not unknown, f"state-changing operations without an expected audit event: {sorted(unknown)}"
    gone = (set(EXPECTED) | set(CHANGES_NOTHING)) - published
    assert not gone, f"the table names operations the gateway no longer has: {sorted(gone)}"


# -- the walk ---------------------------------------------------------------------------------------
Event = dict[str, Any]
Match = Callable[[Event], bool]


@dataclass
class Person:
    email: str
    password: str = PASSWORD
    user_id: str = ""
    tokens: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


@dataclass
class Expectation:
    operation: str
    event_type: str
    reader: str  # "team:<id>", "user:<email>" or "address:<email>"
    match: Match


@dataclass
class Walk:
    suite: RunningSuite
    client: httpx.Client
    people: dict[str, Person] = field(default_factory=dict)
    expectations: list[Expectation] = field(default_factory=list)
    performed: set[str] = field(default_factory=set)
    # Everything secret or personal the walk sent or received: no event's details may hold any.
    secrets: set[str] = field(default_factory=lambda: {PASSWORD, NEW_PASSWORD})

    def keep(self, *values: str) -> None:
        self.secrets.update(v for v in values if v)

    def do(self, operation: str, path: str, *, status: int, person: Person | None = None, **kwargs: Any) -> Any:
        method = operation.split(" ", 1)[0]
        headers = {**(person.headers if person else {}), **kwargs.pop("headers", {})}
        r = self.client.request(method, path, headers=headers, **kwargs)
        assert r.status_code == status, (operation, r.status_code, r.text)
        self.performed.add(operation)
        if r.content and r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
            self.keep(*_strings_named(body, ("access_token", "refresh_token", "mfa_token", "secret")))
            self.keep(*body.get("recovery_codes", []))
            return body
        return None

    def expect(self, operation: str, reader: str, match: Match, *types: str) -> None:
        for event_type in types or EXPECTED[operation]:
            self.expectations.append(Expectation(operation, event_type, reader, match))

    def person(self, name: str) -> Person:
        person = Person(email=f"walk.{name}.{time.time_ns()}@example.com")
        self.people[person.email] = person
        self.keep(person.email)
        return person

    def signed_up(self, person: Person) -> Person:
        mark = self.suite.mailbox.mark()
        body = {"email": person.email, "password": person.password, "name": "Walker"}
        self.do("POST /v1/auth/signup", "/v1/auth/signup", json=body, status=201)
        token = self.suite.mailbox.wait_for(person.email, VERIFY_LINK, after=mark)
        self.keep(token)
        self.do("POST /v1/auth/verify-email", "/v1/auth/verify-email", json={"token": token}, status=200)
        self.login(person)
        by_self = actor(person)
        self.expect("POST /v1/auth/signup", f"user:{person.email}", by_self)
        self.expect("POST /v1/auth/verify-email", f"user:{person.email}", by_self)
        return person

    def login(self, person: Person) -> dict[str, Any]:
        body = {"email": person.email, "password": person.password, "token_delivery": "body"}
        person.tokens = self.do("POST /v1/auth/login", "/v1/auth/login", json=body, status=200)
        if "user" in person.tokens:
            person.user_id = person.tokens["user"]["id"]
        return person.tokens


def actor(person: Person) -> Match:
    return lambda e: (e.get("actor") or {}).get("user_id") == person.user_id


def target(kind: str, ident: str) -> Match:
    return lambda e: (e.get("target") or {}) == {"type": kind, "id": ident}


def session(session_id: str) -> Match:
    return target("session", session_id)


def with_amr(method: str) -> Match:
    return lambda e: method in ((e.get("details") or {}).get("amr") or [])


def both(*matches: Match) -> Match:
    return lambda e: all(m(e) for m in matches)


def _strings_named(body: Any, names: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    if isinstance(body, dict):
        for key, value in body.items():
            if key in names and isinstance(value, str):
                found.append(value)
            found.extend(_strings_named(value, names))
    elif isinstance(body, list):
        for value in body:
            found.extend(_strings_named(value, names))
    return found


def account_steps(w: Walk) -> None:
    """Sign-up, resend, logins, refresh, logout, sessions, password reset and change."""
    # A sign-up not confirmed yet: asking for the link again.
    pending = w.person("pending")
    mark = w.suite.mailbox.mark()
    w.do(
        "POST /v1/auth/signup",
        "/v1/auth/signup",
        json={"email": pending.email, "password": PASSWORD, "name": "P"},
        status=201,
    )
    w.keep(w.suite.mailbox.wait_for(pending.email, VERIFY_LINK, after=mark))
    w.do("POST /v1/auth/verify-email/resend", "/v1/auth/verify-email/resend", json={"email": pending.email}, status=202)
    w.expect("POST /v1/auth/verify-email/resend", f"address:{pending.email}", lambda e: True)

    user = w.signed_up(w.person("sessions"))
    first = user.tokens
    w.expect("POST /v1/auth/login", f"user:{user.email}", both(actor(user), with_amr("pwd")), "auth.login_succeeded")
    w.expect("POST /v1/auth/login", f"user:{user.email}", session(first["session"]["id"]), "session.created")
    refreshed = w.do(
        "POST /v1/auth/refresh", "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}, status=200
    )
    w.expect("POST /v1/auth/refresh", f"user:{user.email}", session(first["session"]["id"]))
    # Two more sessions: one revoked by id from the refreshed one, one by scope=others.
    second = w.login(user)
    third = w.login(user)
    user.tokens = refreshed
    w.do("DELETE /v1/sessions/{id}", f"/v1/sessions/{second['session']['id']}", person=user, status=204)
    w.expect("DELETE /v1/sessions/{id}", f"user:{user.email}", session(second["session"]["id"]))
    w.do("DELETE /v1/sessions", "/v1/sessions", params={"scope": "others"}, person=user, status=200)
    w.expect("DELETE /v1/sessions", f"user:{user.email}", session(third["session"]["id"]))
    w.do("POST /v1/auth/logout", "/v1/auth/logout", person=user, status=204)
    w.expect("POST /v1/auth/logout", f"user:{user.email}", session(first["session"]["id"]))

    # Forgotten password: the link from the mail sets a new one.
    forgetful = w.signed_up(w.person("forgetful"))
    mark = w.suite.mailbox.mark()
    w.do("POST /v1/auth/password/forgot", "/v1/auth/password/forgot", json={"email": forgetful.email}, status=202)
    token = w.suite.mailbox.wait_for(forgetful.email, RESET_RE, after=mark)
    w.keep(token)
    w.do(
        "POST /v1/auth/password/reset",
        "/v1/auth/password/reset",
        json={"token": token, "new_password": NEW_PASSWORD},
        status=204,
    )
    forgetful.password = NEW_PASSWORD
    w.expect("POST /v1/auth/password/forgot", f"user:{forgetful.email}", actor(forgetful))
    w.expect("POST /v1/auth/password/reset", f"user:{forgetful.email}", target("user", forgetful.user_id))

    # Change with the current password, after a step-up (a fresh login is one).
    changer = w.signed_up(w.person("changer"))
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    w.do("POST /v1/auth/password/change", "/v1/auth/password/change", json=body, person=changer, status=204)
    changer.password = NEW_PASSWORD
    w.expect("POST /v1/auth/password/change", f"user:{changer.email}", actor(changer))


def mfa_steps(w: Walk) -> None:
    """TOTP on and off, recovery codes and the MFA login step, for two users in one time window
    (a code is accepted one step either side of now, and each step once per user)."""
    keeper, leaver = w.signed_up(w.person("totp")), w.signed_up(w.person("untotp"))
    if time.time() % 30 > 15:
        wait_for_step(int(time.time()) // 30 + 1)  # three usable steps ahead, not two
    step = int(time.time()) // 30
    for person in (keeper, leaver):
        enrollment = w.do("POST /v1/mfa/totp/enroll", "/v1/mfa/totp/enroll", person=person, status=200)
        secret = enrollment["secret"]
        w.keep(secret)
        code = oathtool_code(secret, (step - 1) * 30)
        w.keep(code)
        w.do("POST /v1/mfa/totp/confirm", "/v1/mfa/totp/confirm", json={"code": code}, person=person, status=200)
        w.expect("POST /v1/mfa/totp/enroll", f"user:{person.email}", actor(person))
        w.expect("POST /v1/mfa/totp/confirm", f"user:{person.email}", actor(person))
        # The second factor at login gives a session with `otp`, as the step-up list needs.
        mfa_token = w.login(person)["mfa_token"]
        code = oathtool_code(secret, step * 30)
        w.keep(code)
        person.tokens = w.do(
            "POST /v1/auth/login/mfa",
            "/v1/auth/login/mfa",
            json={"mfa_token": mfa_token, "code": code},
            status=200,
        )
        sid = person.tokens["session"]["id"]
        w.expect("POST /v1/auth/login/mfa", f"user:{person.email}", actor(person), "auth.mfa_succeeded")
        otp_login = both(actor(person), with_amr("otp"))
        w.expect("POST /v1/auth/login/mfa", f"user:{person.email}", otp_login, "auth.login_succeeded")
        w.expect("POST /v1/auth/login/mfa", f"user:{person.email}", session(sid), "session.created")
        code = oathtool_code(secret, (step + 1) * 30)
        w.keep(code)
        if person is keeper:
            w.do(
                "POST /v1/mfa/recovery-codes", "/v1/mfa/recovery-codes", json={"code": code}, person=person, status=200
            )
            w.expect("POST /v1/mfa/recovery-codes", f"user:{person.email}", actor(person))
        else:
            body = {"password": person.password, "code": code}
            w.do("DELETE /v1/mfa/totp", "/v1/mfa/totp", json=body, person=person, status=204)
            w.expect("DELETE /v1/mfa/totp", f"user:{person.email}", actor(person))


def team_steps(w: Walk) -> tuple[str, Person]:
    """A team from creation to a new owner, through every team, member, role and alert route."""
    owner = w.signed_up(w.person("owner"))
    team = w.do("POST /v1/teams", "/v1/teams", json={"name": "Walkers"}, person=owner, status=201)
    tid = team["id"]
    on_team = f"team:{tid}"
    w.expect("POST /v1/teams", on_team, actor(owner))

    def joined(role: str) -> Person:
        member = w.signed_up(w.person(role))
        mark = w.suite.mailbox.mark()
        invitation = w.do(
            "POST /v1/teams/{tid}/invitations",
            f"/v1/teams/{tid}/invitations",
            json={"email": member.email, "role": "staff"},
            person=owner,
            status=201,
        )
        token = w.suite.mailbox.wait_for(member.email, INVITE_LINK, after=mark)
        w.keep(token)
        w.do("POST /v1/invitations/accept", "/v1/invitations/accept", json={"token": token}, person=member, status=200)
        w.expect("POST /v1/teams/{tid}/invitations", on_team, target("invitation", invitation["id"]))
        w.expect("POST /v1/invitations/accept", on_team, actor(member))
        return member

    member, leaver = joined("member"), joined("leaver")
    mark = w.suite.mailbox.mark()
    never = w.person("never")
    invitation = w.do(
        "POST /v1/teams/{tid}/invitations",
        f"/v1/teams/{tid}/invitations",
        json={"email": never.email, "role": "staff"},
        person=owner,
        status=201,
    )
    w.keep(w.suite.mailbox.wait_for(never.email, INVITE_LINK, after=mark))
    w.do(
        "DELETE /v1/teams/{tid}/invitations/{iid}",
        f"/v1/teams/{tid}/invitations/{invitation['id']}",
        person=owner,
        status=204,
    )
    w.expect("DELETE /v1/teams/{tid}/invitations/{iid}", on_team, target("invitation", invitation["id"]))

    member.tokens = w.do(
        "POST /v1/auth/switch-team", "/v1/auth/switch-team", json={"team_id": tid}, person=member, status=200
    )
    w.expect("POST /v1/auth/switch-team", f"user:{member.email}", session(member.tokens["session"]["id"]))

    assignee = f"/v1/teams/{tid}/customers/c_walk/assignees/{member.user_id}"
    w.do("PUT /v1/teams/{tid}/customers/{cid}/assignees/{uid}", assignee, person=owner, status=204)
    w.do("DELETE /v1/teams/{tid}/customers/{cid}/assignees/{uid}", assignee, person=owner, status=204)
    w.expect("PUT /v1/teams/{tid}/customers/{cid}/assignees/{uid}", on_team, actor(owner))
    w.expect("DELETE /v1/teams/{tid}/customers/{cid}/assignees/{uid}", on_team, actor(owner))

    w.do(
        "PATCH /v1/teams/{tid}/members/{uid}",
        f"/v1/teams/{tid}/members/{member.user_id}",
        json={"role": "manager"},
        person=owner,
        status=200,
    )
    w.expect("PATCH /v1/teams/{tid}/members/{uid}", on_team, target("user", member.user_id))
    w.do("DELETE /v1/teams/{tid}/members/{uid}", f"/v1/teams/{tid}/members/{leaver.user_id}", person=owner, status=204)
    w.expect("DELETE /v1/teams/{tid}/members/{uid}", on_team, target("user", leaver.user_id))

    # Step-up actions: a re-authentication first keeps them inside the ten minutes however slow
    # the machine is.
    owner.tokens = w.do(
        "POST /v1/auth/reauthenticate",
        "/v1/auth/reauthenticate",
        json={"password": owner.password},
        person=owner,
        status=200,
    )
    w.expect("POST /v1/auth/reauthenticate", f"user:{owner.email}", actor(owner))
    w.do(
        "DELETE /v1/teams/{tid}/members/{uid}/sessions",
        f"/v1/teams/{tid}/members/{member.user_id}/sessions",
        person=owner,
        status=200,
    )
    w.expect("DELETE /v1/teams/{tid}/members/{uid}/sessions", on_team, session(member.tokens["session"]["id"]))
    w.do("PATCH /v1/teams/{tid}", f"/v1/teams/{tid}", json={"name": "Walkers Ltd"}, person=owner, status=200)
    w.expect("PATCH /v1/teams/{tid}", on_team, actor(owner))
    billing_email = w.person("billing").email
    w.do(
        "PUT /v1/teams/{tid}/billing",
        f"/v1/teams/{tid}/billing",
        json={"plan": "professional", "billing_email": billing_email},
        person=owner,
        status=200,
    )
    w.expect("PUT /v1/teams/{tid}/billing", on_team, actor(owner))
    roles = w.client.get(f"/v1/teams/{tid}/roles", headers=owner.headers).json()["roles"]
    w.do(
        "PUT /v1/teams/{tid}/roles/{role}",
        f"/v1/teams/{tid}/roles/staff",
        json={"permissions": sorted({*roles["staff"], "orders.read"})},
        person=owner,
        status=200,
    )
    w.expect("PUT /v1/teams/{tid}/roles/{role}", on_team, actor(owner))

    # An alert raised in the team, triaged.
    raised = alert("privilege_escalation", team_id=tid, subject=f"user:{member.user_id}", user_ids=[member.user_id])
    publish(w.suite, [], [raised])
    wait_until(
        lambda: w.client.get(f"/v1/teams/{tid}/security/alerts", headers=owner.headers).json()["alerts"],
        lambda alerts: raised.id in {a["id"] for a in alerts},
        what="the alert listed",
    )
    w.do(
        "PATCH /v1/teams/{tid}/security/alerts/{id}",
        f"/v1/teams/{tid}/security/alerts/{raised.id}",
        json={"status": "acknowledged", "note": "looking into it"},
        person=owner,
        status=200,
    )
    w.expect("PATCH /v1/teams/{tid}/security/alerts/{id}", on_team, actor(owner))

    w.do(
        "POST /v1/teams/{tid}/transfer-ownership",
        f"/v1/teams/{tid}/transfer-ownership",
        json={"user_id": member.user_id},
        person=owner,
        status=200,
    )
    w.expect("POST /v1/teams/{tid}/transfer-ownership", on_team, both(actor(owner), target("user", member.user_id)))
    return tid, owner


# -- reading the events back ------------------------------------------------------------------------
def _stored_for_address(suite: RunningSuite, email: str) -> list[Event]:
    """Events about an address without an account: only its keyed hash is stored with them."""
    subject = keyed_hash(suite.env["DEELRX_SECRET_KEY"].encode(), email)
    url = suite.settings.service_database_url("audit")
    table = audit_sql.events

    async def read() -> list[Event]:
        engine = db.create_engine(url, "audit")
        try:
            async with engine.connect() as conn:
                query = select(table.c.id, table.c.type, table.c.details).where(table.c.subject_hash == subject)
                rows = await conn.execute(query)
                return [{"id": r.id, "type": r.type, "details": json.loads(r.details)} for r in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


class Readers:
    """Every event each reader sees, read whole on each poll (a few dozen events per reader)."""

    def __init__(self, w: Walk, team_reader: Person) -> None:
        self.w = w
        self.team_reader = team_reader
        self.seen: dict[str, Event] = {}

    def read(self, reader: str) -> list[Event]:
        try:
            found = self._read(reader)
        except AssertionError as exc:  # a failed read is not a missing event: stop the test here
            raise RuntimeError(f"reading the events of {reader}: {exc}") from exc
        self.seen.update((e["id"], e) for e in found)
        return found

    def _read(self, reader: str) -> list[Event]:
        kind, key = reader.split(":", 1)
        if kind == "team":
            return self._get(self.team_reader, f"/v1/teams/{key}/audit-events")
        if kind == "user":
            return self._get(self.w.people[key], "/v1/me/security-activity")
        return _stored_for_address(self.w.suite, key)

    def _get(self, person: Person, url: str) -> list[Event]:
        events: list[Event] = []
        cursor = None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            r = self.w.client.get(url, headers=person.headers, params=params)
            if r.status_code == 401:  # expired or revoked by the walk: a fresh session reads
                self._renew(person)
                continue
            assert r.status_code == 200, r.text
            events.extend(r.json()["events"])
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return events

    def _renew(self, person: Person) -> None:
        """Refresh the session (a TOTP user cannot log in again without a code), else log in."""
        r = self.w.client.post("/v1/auth/refresh", json={"refresh_token": person.tokens.get("refresh_token", "")})
        if r.status_code != 200:
            body = {"email": person.email, "password": person.password, "token_delivery": "body"}
            r = self.w.client.post("/v1/auth/login", json=body)
        assert r.status_code == 200 and "access_token" in r.json(), r.text
        person.tokens = r.json()
        self.w.keep(r.json()["access_token"], r.json()["refresh_token"])


def unmet(expectations: list[Expectation], found: list[Event]) -> list[Expectation]:
    return [x for x in expectations if not any(e["type"] == x.event_type and x.match(e) for e in found)]


def test_every_state_changing_operation_records_its_event(suite: RunningSuite) -> None:
    with suite.client() as client:
        w = Walk(suite, client)
        account_steps(w)
        mfa_steps(w)
        _, team_reader = team_steps(w)
        assert w.performed == set(EXPECTED), sorted(set(EXPECTED) - w.performed)
        covered = {(x.operation, x.event_type) for x in w.expectations}
        assert covered == {(op, t) for op, types in EXPECTED.items() for t in types}

        readers = Readers(w, team_reader)
        by_reader: dict[str, list[Expectation]] = {}
        for x in w.expectations:
            by_reader.setdefault(x.reader, []).append(x)
        missing: list[str] = []
        for reader, expected in by_reader.items():
            try:
                # Once a second: the reads count toward the reader's own rate limit.
                wait_until(
                    lambda r=reader: readers.read(r),  # type: ignore[misc]
                    lambda got, xs=expected: not unmet(xs, got),  # type: ignore[misc]
                    timeout=30,
                    interval=1.0,
                )
            except AssertionError:
                last = readers.read(reader)
                missing += [f"{x.operation} -> {x.event_type} ({reader})" for x in unmet(expected, last)]
        assert not missing, "operations whose audit event never arrived:\n" + "\n".join(missing)

        # No secret or address the walk used is in any event's details.
        secrets = {s.lower() for s in w.secrets if len(s) >= 6}
        for event in readers.seen.values():
            details = json.dumps(event.get("details") or {}).lower()
            leaked = sorted(s for s in secrets if s in details)
            assert not leaked, (event["type"], event.get("details"), leaked)
        assert len(readers.seen) >= len(covered)
