"""The audit trail and security monitoring over HTTP, through the gateway, with every
service in its own process: permissions (404 for outsiders), filters and pagination,
streamed exports (CSV formula injection neutralised), chain verification naming the first
tampered event, alert triage, the live SSE stream with resume, and a user's own activity.

Teams and memberships are set up with rbac's gRPC API; extra audit events and alerts are
published to JetStream the way services and the detector publish them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import nats
import pytest
from sqlalchemy import text

from deelrx.audit.v1 import audit_pb2
from deelrx.rbac.v1 import rbac_pb2, rbac_pb2_grpc
from deelrx_kit import db, nats_bus
from deelrx_kit.audit_events import new_event, subject_for
from deelrx_kit.grpc_server import channel
from deelrx_kit.ids import new_id
from deelrx_kit.timestamps import to_timestamp
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify
from tests.integration.harness import wait_until

pytestmark = pytest.mark.e2e
T = TypeVar("T")


# -- set-up helpers ----------------------------------------------------------------------------
def bearer_account(suite: RunningSuite) -> tuple[str, dict[str, str]]:
    """A verified account; its user id and Bearer headers."""
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        assert r.status_code == 200, r.text
        body = r.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}


def add_members(suite: RunningSuite, team_id: str, roles: dict[str, str]) -> None:
    async def run() -> None:
        ch = channel(suite.env["DEELRX_RBAC_ADDR"])
        stub = rbac_pb2_grpc.RbacServiceStub(ch)
        for user_id, role in roles.items():
            await stub.AddMember(
                rbac_pb2.AddMemberRequest(team_id=team_id, user_id=user_id, role=role, operation_id=new_id("req"))
            )
        await ch.close()

    asyncio.run(run())


def publish(suite: RunningSuite, events: list[audit_pb2.AuditEvent], alerts: list[audit_pb2.Alert] = ()) -> None:  # type: ignore[assignment]
    async def run() -> None:
        nc = await nats.connect(suite.nats_url)
        js = nc.jetstream()
        for ev in events:
            await js.publish(subject_for(ev), ev.SerializeToString(), headers={"Nats-Msg-Id": ev.id})
        for a in alerts:
            await js.publish(nats_bus.ALERTS_SUBJECT, a.SerializeToString(), headers={"Nats-Msg-Id": a.id})
        await nc.close()

    asyncio.run(run())


def alert(
    rule: str, *, team_id: str = "", subject: str = "", user_ids: list[str] = (), **evidence: Any
) -> audit_pb2.Alert:  # type: ignore[assignment]
    a = audit_pb2.Alert(
        id=new_id("alr"),
        time=to_timestamp(datetime.now(UTC)),
        rule=rule,
        severity="high",
        team_id=team_id,
        subject=subject,
        status="open",
        user_ids=list(user_ids),
    )
    if evidence:
        a.evidence.update(evidence)
    return a


def all_pages(client: httpx.Client, url: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = client.get(url, headers=headers, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["events"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


# -- tests ---------------------------------------------------------------------------------------
def test_team_audit_trail_permissions_filters_export_and_verification(suite: RunningSuite) -> None:
    owner, owner_h = bearer_account(suite)
    staff, staff_h = bearer_account(suite)
    _, outsider_h = bearer_account(suite)
    tid, other_tid = new_id("tm"), new_id("tm")
    add_members(suite, tid, {owner: "owner", staff: "staff"})
    start = datetime.now(UTC) - timedelta(seconds=5)
    mine = [
        new_event(
            "customer.updated" if i % 3 else "team.updated",
            source="test",
            now=start + timedelta(milliseconds=10 * i),
            team_id=tid,
            actor_user_id=owner if i % 2 else staff,
            details={"n": i},
        )
        for i in range(57)
    ]
    nasty = new_event(
        "team.updated",
        source="test",
        now=start + timedelta(seconds=1),
        team_id=tid,
        actor_user_id=owner,
        details={"name": '=HYPERLINK("http://evil")', "memo": "+1", "x": "-2", "y": "@SUM(A1)"},
    )
    nasty.actor.user_agent = "=cmd|' /C calc'!A0"
    theirs = [new_event("team.updated", source="test", now=start, team_id=other_tid) for _ in range(5)]
    publish(suite, [*mine, nasty, *theirs])
    url = f"/v1/teams/{tid}/audit-events"
    ids = {e.id for e in [*mine, nasty]}
    with suite.client() as client:
        # Outsiders cannot tell the team exists; members without audit.read are refused.
        missing = client.get(f"/v1/teams/{new_id('tm')}/audit-events", headers=outsider_h)
        outsider = client.get(url, headers=outsider_h)
        assert missing.status_code == outsider.status_code == 404
        assert outsider.json()["code"] == missing.json()["code"] == "not_found"
        assert client.get(url, headers=staff_h).json()["code"] == "forbidden"
        assert client.get(url).status_code == 401
        for bad in (
            {"since": "yesterday"},
            {"limit": 500},
            {"cursor": "not-a-cursor"},
            {"until": "2026-01-01T00:00:00"},
        ):
            r = client.get(url, headers=owner_h, params=bad)
            assert r.status_code == 422 and r.json()["code"] == "validation_error", (bad, r.text)

        events = wait_until(
            lambda: all_pages(client, url, owner_h, limit=25, type="customer.updated,team.updated"),
            lambda evs: ids <= {e["id"] for e in evs},
        )
        got = [e["id"] for e in events]
        assert set(got) == ids and len(got) == len(ids)  # every event once, none of the other team
        times = [e["time"] for e in events]
        assert times == sorted(times, reverse=True)  # newest first
        sample = next(e for e in events if e["id"] == mine[1].id)
        assert sample["actor"]["user_id"] == owner and sample["type"] == "customer.updated"
        assert sample["details"] == {"n": 1} and sample["outcome"] == "success"

        by_staff = all_pages(client, url, owner_h, actor=staff, type="customer.updated,team.updated")
        assert {e["id"] for e in by_staff} == {e.id for e in mine if e.actor.user_id == staff}
        window = all_pages(
            client,
            url,
            owner_h,
            type="customer.updated",
            since=(start + timedelta(milliseconds=100)).isoformat(),
            until=(start + timedelta(milliseconds=200)).isoformat(),
        )
        assert {e["id"] for e in window} == {
            e.id for i, e in enumerate(mine) if 10 <= i < 20 and e.type == "customer.updated"
        }

        # Export, streamed: every event of the team, oldest first.
        r = client.get(f"{url}/export", headers=owner_h, params={"format": "ndjson"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        exported = [json.loads(line) for line in r.text.splitlines()]
        exported_ids = [e["id"] for e in exported]
        assert ids <= set(exported_ids) and not {e.id for e in theirs} & set(exported_ids)
        assert [e["time"] for e in exported] == sorted(e["time"] for e in exported)

        r = client.get(f"{url}/export", headers=owner_h, params={"format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        row = next(x for x in rows if x["id"] == nasty.id)
        assert row["actor_user_agent"] == "'=cmd|' /C calc'!A0"
        assert not any(cell.startswith(("=", "+", "-", "@")) for x in rows for cell in x.values())
        assert json.loads(row["details"])["name"] == '=HYPERLINK("http://evil")'  # inside JSON, not at a cell start

        assert client.get(f"{url}/export", headers=staff_h).status_code == 403
        assert client.get(f"{url}/export", headers=owner_h, params={"format": "xml"}).status_code == 422

        r = client.get(f"{url}/verify", headers=owner_h)
        assert r.status_code == 200, r.text
        verified = r.json()
        assert verified["ok"] is True and verified["events_checked"] >= len(ids) and len(verified["head_hash"]) == 64
        assert "first_bad_event_id" not in verified

        # Exports and verifications are audited, with who did them.
        done = wait_until(
            lambda: all_pages(client, url, owner_h, type="audit.*"),
            # Two exports and one verification (the refused export is no export).
            lambda evs: sorted(e["type"] for e in evs) == ["audit.exported", "audit.exported", "audit.verified"],
        )
        kinds = sorted((e["type"], e["details"].get("format", "")) for e in done)
        assert ("audit.exported", "csv") in kinds and ("audit.exported", "ndjson") in kinds
        assert all(e["actor"]["user_id"] == owner for e in done)

    # Rewriting a stored row is found, and named.
    target = mine[20].id
    asyncio.run(_tamper(suite, target))
    with suite.client() as client:
        broken = client.get(f"{url}/verify", headers=owner_h).json()
    assert broken["ok"] is False and broken["first_bad_event_id"] == target


async def _tamper(suite: RunningSuite, event_id: str) -> None:
    url = suite.env.get("DEELRX_DATABASE_URL") or f"sqlite+aiosqlite:///{suite.env['DEELRX_DATA_DIR']}/audit.db"
    engine = db.create_engine(url, "audit")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE audit_events SET details = :d WHERE id = :id"), {"d": '{"n":999}', "id": event_id}
        )
    await engine.dispose()


def test_alerts_are_visible_per_team_and_triage_is_audited(suite: RunningSuite) -> None:
    owner, owner_h = bearer_account(suite)
    manager, manager_h = bearer_account(suite)
    staff, staff_h = bearer_account(suite)
    stranger = new_id("usr")
    tid = new_id("tm")
    add_members(suite, tid, {owner: "owner", manager: "manager", staff: "staff"})
    in_team = alert("privilege_escalation", team_id=tid, subject=f"user:{staff}", user_ids=[staff])
    about_member = alert(
        "password_spray",
        subject="ip:203.0.113.9",
        user_ids=[manager, stranger],
        window_seconds=600,
        threshold=15,
        accounts={manager: {"count": 2, "event_ids": []}, stranger: {"count": 9, "event_ids": []}},
    )
    not_ours = alert("brute_force", subject=f"user:{stranger}", user_ids=[stranger])
    other_team = alert("mass_export", team_id=new_id("tm"), subject=f"user:{stranger}", user_ids=[stranger])
    publish(suite, [], [in_team, about_member, not_ours, other_team])
    url = f"/v1/teams/{tid}/security/alerts"
    with suite.client() as client:
        published = {in_team.id, about_member.id, not_ours.id, other_team.id}
        listed = wait_until(
            lambda: client.get(url, headers=manager_h).json()["alerts"],
            lambda alerts: {in_team.id, about_member.id} <= {a["id"] for a in alerts},
        )
        # (the detector's own alerts about these new accounts, e.g. new_device, may be listed too)
        assert {a["id"] for a in listed} & published == {in_team.id, about_member.id}
        spray = next(a for a in listed if a["id"] == about_member.id)
        assert stranger not in json.dumps(spray)  # no evidence from outside the team
        assert spray["status"] == "open" and spray["rule"] == "password_spray"
        assert client.get(url, headers=staff_h).json()["code"] == "forbidden"

        patch = f"{url}/{about_member.id}"
        assert client.patch(patch, headers=staff_h, json={"status": "resolved"}).status_code == 403
        for bad in ({"status": "open"}, {"status": "resolved", "extra": 1}, {"status": "resolved", "note": "x" * 1001}):
            r = client.patch(patch, headers=manager_h, json=bad)
            assert r.status_code == 422, (bad, r.text)
        assert client.patch(f"{url}/{not_ours.id}", headers=manager_h, json={"status": "resolved"}).status_code == 404
        assert client.patch(f"{url}/{other_team.id}", headers=owner_h, json={"status": "resolved"}).status_code == 404
        assert client.patch(f"{url}/alr_nope", headers=owner_h, json={"status": "resolved"}).status_code == 404

        r = client.patch(patch, headers=manager_h, json={"status": "acknowledged", "note": "looking into it"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "acknowledged" and r.json()["note"] == "looking into it"
        again = {a["id"]: a for a in client.get(url, headers=owner_h).json()["alerts"]}
        assert again[about_member.id]["status"] == "acknowledged"
        assert again[in_team.id]["status"] == "open"

        updates = wait_until(
            lambda: client.get(
                f"/v1/teams/{tid}/audit-events", headers=owner_h, params={"type": "security.alert_updated"}
            ).json()["events"],
            lambda evs: len(evs) >= 1,
        )
        assert updates[0]["actor"]["user_id"] == manager
        assert updates[0]["target"] == {"type": "alert", "id": about_member.id}
        assert updates[0]["details"]["status"] == "acknowledged"
        assert updates[0]["details"]["previous_status"] == "open"


def _read_frames(lines: Any, want: set[str], timeout: float = 20.0) -> list[dict[str, str]]:
    """SSE frames until data frames carrying every id in `want` arrived (others kept too)."""
    frames: list[dict[str, str]] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line == "":
            if current:
                frames.append(current)
                current = {}
            if want <= {json.loads(f["data"])["id"] for f in frames if "data" in f}:
                break
            continue
        field, _, value = line.partition(":")
        current[field or "comment"] = value.lstrip(" ")
    return frames


def test_live_stream_sends_team_events_and_alerts_and_resumes(suite: RunningSuite) -> None:
    owner, owner_h = bearer_account(suite)
    member, _ = bearer_account(suite)
    _, outsider_h = bearer_account(suite)
    tid = new_id("tm")
    add_members(suite, tid, {owner: "owner", member: "staff"})
    url = f"/v1/teams/{tid}/security/stream"
    first = new_event("team.updated", source="test", now=datetime.now(UTC), team_id=tid, actor_user_id=owner)
    elsewhere = new_event("team.updated", source="test", now=datetime.now(UTC), team_id=new_id("tm"))
    raised = alert("brute_force", subject=f"user:{member}", user_ids=[member], accounts={member: {"count": 10}})
    with suite.client() as client:
        assert client.get(url, headers=outsider_h).status_code == 404
        with client.stream("GET", url, headers=owner_h) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            publish(suite, [elsewhere, first], [raised])
            frames = _read_frames(r.iter_lines(), {first.id, raised.id})
        data = {json.loads(f["data"])["id"]: f for f in frames if "data" in f}
        assert elsewhere.id not in data
        assert data[first.id]["event"] == "audit" and data[raised.id]["event"] == "alert"
        assert all(f.get("id") for f in data.values())
        # Resume: after the first event, what was stored since is replayed.
        later = new_event("member.updated", source="test", now=datetime.now(UTC), team_id=tid, actor_user_id=owner)
        publish(suite, [later])
        wait_until(
            lambda: client.get(
                f"/v1/teams/{tid}/audit-events", headers=owner_h, params={"type": "member.updated"}
            ).json()["events"],
            lambda evs: len(evs) == 1,
        )
        with client.stream("GET", url, headers={**owner_h, "Last-Event-ID": data[first.id]["id"]}) as r:
            replay = [
                json.loads(f["data"])["id"] for f in _read_frames(r.iter_lines(), {raised.id, later.id}) if "data" in f
            ]
        # In stored order, nothing from before the position. The team's own activity since (the
        # product's events, stored on this team's chain) may be replayed between them.
        mine = [i for i in replay if i in {first.id, raised.id, later.id}]
        assert mine == [raised.id, later.id], replay
        # Heartbeats keep an idle stream open (DEELRX_AUDIT_STREAM_HEARTBEAT_SECONDS=1 here).
        with client.stream("GET", url, headers=owner_h) as r:
            comments = []
            for line in r.iter_lines():
                if line.startswith(":"):
                    comments.append(line)
                if ": heartbeat" in comments:
                    break
        assert ": heartbeat" in comments
        bad = client.get(url, headers={**owner_h, "Last-Event-ID": "garbage!"})
        assert bad.status_code == 422


def test_my_security_activity_lists_only_my_security_events(suite: RunningSuite) -> None:
    me, me_h = bearer_account(suite)
    other, _ = bearer_account(suite)
    with suite.client() as client:
        assert client.get("/v1/me/security-activity").status_code == 401
        events = wait_until(
            lambda: client.get("/v1/me/security-activity", headers=me_h).json()["events"],
            lambda evs: any(e["type"] == "auth.login_succeeded" for e in evs),
        )
        assert any(e["type"] == "auth.login_succeeded" for e in events)
        assert all(e["actor"]["user_id"] in (me, None) for e in events)
        assert other not in json.dumps(events)
        assert all(e["type"].split(".")[0] in ("user", "auth", "session", "mfa", "password") for e in events)
        assert client.get("/v1/me/security-activity", headers=me_h, params={"limit": 0}).status_code == 422


def test_attacks_through_the_gateway_raise_alerts_the_team_sees(suite: RunningSuite) -> None:
    """Real pipeline: HTTP -> identity/sessions -> outbox -> JetStream -> detector (Redis
    windows) -> security.alerts -> audit -> HTTP."""
    owner, owner_h = bearer_account(suite)
    victim_email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, victim_email)
        r = client.post("/v1/auth/login", json={"email": victim_email, "password": PASSWORD, "token_delivery": "body"})
        victim = r.json()["user"]["id"]
        stolen = r.json()["refresh_token"]
    tid = new_id("tm")
    add_members(suite, tid, {owner: "owner", victim: "staff"})
    with suite.client() as attacker:
        for _ in range(10):
            r = attacker.post("/v1/auth/login", json={"email": victim_email, "password": "not the password 000"})
            assert r.status_code in (401, 429), r.text
        # The victim's refresh token used twice: the second use is a reuse.
        first = attacker.post("/v1/auth/refresh", json={"refresh_token": stolen})
        assert first.status_code == 200, first.text
        time.sleep(11)  # past the grace interval
        reuse = attacker.post("/v1/auth/refresh", json={"refresh_token": stolen})
        assert reuse.status_code == 401
    with suite.client() as client:
        alerts = wait_until(
            lambda: client.get(f"/v1/teams/{tid}/security/alerts", headers=owner_h).json()["alerts"],
            lambda found: {"brute_force", "refresh_token_reuse"} <= {a["rule"] for a in found},
            timeout=30,
        )
    by_rule = {a["rule"]: a for a in alerts}
    assert by_rule["brute_force"]["subject"] == f"user:{victim}"
    assert by_rule["brute_force"]["severity"] == "high"
    assert by_rule["refresh_token_reuse"]["subject"] == f"user:{victim}"
    assert "not the password" not in json.dumps(alerts) and stolen not in json.dumps(alerts)
