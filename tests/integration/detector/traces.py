"""Scripted traces of attacks and of a normal working day, as audit events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from deelrx.audit.v1 import audit_pb2
from deelrx_kit.audit_events import new_event
from deelrx_kit.ids import new_id

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
UA_LAPTOP = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"
UA_PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148"


def ev(
    type: str,
    at: float,
    *,
    user: str = "",
    ip: str = "",
    team: str = "",
    ua: str = UA_LAPTOP,
    outcome: str = "success",
    target: tuple[str, str] | None = None,
    session: str = "",
    subject_hash: str = "",
    **details: object,
) -> audit_pb2.AuditEvent:
    e = new_event(
        type,
        source="trace",
        now=T0 + timedelta(seconds=at),
        team_id=team,
        actor_user_id=user,
        target=target or (("user", user) if user else None),
        outcome=outcome,
        details=details or None,
        session_id=session,
        subject_hash=subject_hash,
    )
    e.actor.ip, e.actor.user_agent = ip, ua
    return e


def brute_force(victim: str) -> list[audit_pb2.AuditEvent]:
    return [ev("auth.login_failed", i * 12, user=victim, ip="203.0.113.66", outcome="failure") for i in range(12)]


def spray(ip: str = "198.51.100.77", accounts: int = 30) -> list[audit_pb2.AuditEvent]:
    return [ev("auth.login_failed", i * 5, user=new_id("usr"), ip=ip, outcome="failure") for i in range(accounts)]


def stuffing(network: str = "192.0.2") -> list[audit_pb2.AuditEvent]:
    rnd = random.Random(7)
    out = []
    for i in range(40):
        ip = f"{network}.{rnd.randrange(2, 250)}"
        ok = i in (13, 29)  # two leaked pairs still work
        out.append(
            ev(
                "auth.login_succeeded" if ok else "auth.login_failed",
                i * 7,
                user=new_id("usr"),
                ip=ip,
                outcome="success" if ok else "failure",
            )
        )
    return out


def mfa_guessing(victim: str) -> list[audit_pb2.AuditEvent]:
    return [ev("auth.mfa_failed", i * 40, user=victim, ip="203.0.113.5", outcome="failure") for i in range(6)]


def stolen_refresh_token(victim: str) -> list[audit_pb2.AuditEvent]:
    return [ev("session.refresh_reuse_detected", 0, user=victim, ip="203.0.113.99", ua=UA_PHONE, session=new_id("ses"))]


def privilege_escalation(team: str, actor: str, promoted: str) -> list[audit_pb2.AuditEvent]:
    return [
        ev(
            "member.role_changed",
            0,
            user=actor,
            team=team,
            target=("user", promoted),
            from_role="staff",
            to_role="owner",
        ),
        ev(
            "roles.updated",
            30,
            user=actor,
            team=team,
            target=("role", "staff"),
            role="staff",
            added=["audit.read", "members.manage"],
            removed=[],
        ),
    ]


def mass_export(team: str, actor: str) -> list[audit_pb2.AuditEvent]:
    return [ev("audit.exported", i * 300, user=actor, team=team, target=("team", team), format="csv") for i in range(4)]


def normal_day(team: str, users: int = 50) -> list[audit_pb2.AuditEvent]:
    """50 people behind the office address and at home: logins with the usual typos, token
    refreshes all day, two new laptops, one forgotten password, one export."""
    rnd = random.Random(42)
    office = "198.51.100.10"
    out: list[audit_pb2.AuditEvent] = []
    people = [new_id("usr") for _ in range(users)]
    for n, user in enumerate(people):
        start = rnd.uniform(0, 3600)  # arrivals between 8 and 9
        ip = office if n % 5 else f"203.0.113.{n}"  # some work from home
        typos = rnd.choice([0, 0, 0, 1, 1, 2])
        for t in range(typos):
            out.append(ev("auth.login_failed", start + t * 8, user=user, ip=ip, team=team, outcome="failure"))
        session = new_id("ses")
        at = start + typos * 8 + 5
        out.append(ev("auth.login_succeeded", at, user=user, ip=ip, team=team, session=session))
        out.append(
            ev("session.created", at + 0.1, user=user, ip=ip, team=team, session=session, new_device=n in (3, 17))
        )
        for k in range(1, 16):  # refreshes through the day, same place, same browser
            out.append(ev("session.refreshed", at + k * 1800, user=user, ip=ip, team=team, session=session))
    forgetful = people[7]
    out.append(ev("password.reset_requested", 5000, user=forgetful, ip=office))
    out.append(ev("password.reset", 5300, user=forgetful, ip=office))
    out.append(ev("auth.login_succeeded", 5320, user=forgetful, ip=office, team=team, session=new_id("ses")))
    out.append(ev("audit.exported", 20000, user=people[0], team=team, target=("team", team), format="csv"))
    out.sort(key=lambda e: (e.time.seconds, e.time.nanos))
    return out
