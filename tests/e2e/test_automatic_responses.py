"""A brute force through the whole product (gateway -> identity -> outbox -> JetStream ->
detector -> security.alerts -> the detector's responses -> identity and rbac) with the default
responses: the account is held, the team's owners are mailed (without secrets), and the
responses are in the audit trail."""

from __future__ import annotations

from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import PASSWORD
from tests.e2e.team_flows import account, create_team, join
from tests.integration.harness import wait_until

WRONG = "not the password 000"


def test_a_brute_force_holds_the_account_and_mails_the_owners(suite: RunningSuite) -> None:
    owner = account(suite)
    tid = create_team(owner, "Brute Force Target Ltd")
    victim = join(suite, owner, tid, "staff")
    mark = suite.mailbox.mark()
    with suite.client() as attacker:
        for _ in range(10):
            r = attacker.post("/v1/auth/login", json={"email": victim.email, "password": WRONG})
            assert r.status_code in (401, 429), r.text

    rule = suite.mailbox.wait_for(owner.email, r"Rule:\s+(brute_force)", after=mark, timeout=30)
    assert rule == "brute_force"
    notice = next(m for m in suite.mailbox.messages[mark:] if "security alert" in (m["Subject"] or ""))
    body = "".join(p.get_payload(decode=True).decode() for p in notice.walk() if p.get_content_maintype() == "text")
    assert "Brute Force Target Ltd" in body and WRONG not in body and victim.email not in body

    # The victim sees the hold in their own security activity (their session lives on).
    held = wait_until(
        lambda: victim.client.get("/v1/me/security-activity", params={"type": "auth.account_locked"}).json()["events"],
        lambda events: len(events) >= 1,
        timeout=30,
        interval=1.0,  # each poll counts toward the caller's rate limit
    )
    assert held[0]["details"]["reason"] == "security:brute_force"
    with suite.client() as fresh:
        r = fresh.post("/v1/auth/login", json={"email": victim.email, "password": PASSWORD})
        assert r.status_code == 429 and r.json()["code"] == "account_locked", r.text
        assert int(r.headers["Retry-After"]) > 0
    refused = wait_until(
        lambda: victim.client.get("/v1/me/security-activity", params={"type": "auth.login_failed"}).json()["events"],
        lambda events: any(e["details"].get("lock") == "hold" for e in events),
        timeout=30,
        interval=1.0,  # each poll counts toward the caller's rate limit
    )
    assert any(e["details"].get("lock") == "hold" for e in refused)  # held, not only the client's lock

    # The team's trail holds the responses.
    found = wait_until(
        lambda: owner.client.get(f"/v1/teams/{tid}/audit-events", params={"type": "security.*"}).json()["events"],
        lambda events: {"security.owners_notified", "security.response_taken"} <= {e["type"] for e in events},
        timeout=30,
        interval=1.0,  # each poll counts toward the caller's rate limit
    )
    actions = {e["details"]["action"] for e in found if e["type"] == "security.response_taken"}
    assert "notify_owners" in actions
