"""Sign up -> verify email -> log in -> /v1/auth/me -> log out, through the gateway, with every
service running as its own process, and the audit trail of each step arriving in JetStream."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from deelrx.audit.v1 import audit_pb2
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import CSRF_COOKIE, PASSWORD, new_email, sign_up_and_verify

pytestmark = pytest.mark.e2e


def _audit_events(
    nats_url: str, types: set[str], since: float, timeout: float = 15.0, user_id: str = ""
) -> list[audit_pb2.AuditEvent]:
    """Events in the AUDIT stream published after `since` (wall clock), only those about
    `user_id` when given (other tests running at the same time publish the same types)."""

    async def collect() -> list[audit_pb2.AuditEvent]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        found: list[audit_pb2.AuditEvent] = []
        deadline = time.monotonic() + timeout
        sub = await js.subscribe(
            "audit.events.>",
            ordered_consumer=True,
            # From `since` on: the stream also holds every other test's events.
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=datetime.fromtimestamp(int(since) - 1, UTC),
            ),
        )
        try:
            while time.monotonic() < deadline and not types <= {e.type for e in found}:
                try:
                    msg = await sub.next_msg(timeout=1)
                except nats.errors.TimeoutError:
                    continue
                event = audit_pb2.AuditEvent.FromString(msg.data)
                about_user = not user_id or user_id in (event.actor.user_id, event.target.id)
                if event.time.ToSeconds() >= int(since) - 1 and about_user:
                    found.append(event)
        finally:
            await sub.unsubscribe()
            await nc.close()
        return found

    return asyncio.run(collect())


def test_first_path_with_cookies(suite: RunningSuite) -> None:
    started = time.time()
    email = new_email()
    with suite.client() as client:
        # Before verification the correct password is told apart only as "not verified".
        mark = suite.mailbox.mark()
        client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "Ada"})
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 403 and r.json()["code"] == "email_not_verified", r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        # Let this sign-up's mail arrive first, so the link used below is the second sign-up's.
        suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)", after=mark)

        link = suite.mailbox.wait_for(email, r"/verify-email\?token=([A-Za-z0-9_\-]+)")
        # A second sign-up within the minute is not mailed again; with two live sign-ups the
        # link also needs the password chosen at its own sign-up.
        r = client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD + "!", "name": "Ada Lovelace"})
        assert r.status_code == 201
        r = client.post("/v1/auth/verify-email", json={"token": link})
        assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/password", r.text
        r = client.post("/v1/auth/verify-email", json={"token": link, "password": PASSWORD})
        assert r.status_code == 200, r.text

        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mfa_required"] is False
        assert body["user"]["email"] == email and body["user"]["email_verified"] is True
        assert body["user"]["name"] == "Ada"  # the name of the sign-up whose link was used
        assert body["session"]["id"].startswith("ses_")
        assert "access_token" not in body and "refresh_token" not in body
        assert r.headers["cache-control"] == "no-store"
        set_cookie = r.headers.get_list("set-cookie")
        session_cookie = next(c for c in set_cookie if c.startswith("deelrx_session="))
        refresh_cookie = next(c for c in set_cookie if c.startswith("deelrx_refresh="))
        csrf_cookie = next(c for c in set_cookie if c.startswith("deelrx_csrf="))
        assert "httponly" in session_cookie.lower() and "samesite=lax" in session_cookie.lower()
        assert "httponly" in refresh_cookie.lower() and "samesite=strict" in refresh_cookie.lower()
        assert "httponly" not in csrf_cookie.lower()
        assert "RateLimit-Policy" in r.headers and "RateLimit" in r.headers

        r = client.get("/v1/auth/me")
        assert r.status_code == 200, r.text
        me = r.json()
        assert me["user"]["id"] == body["user"]["id"]
        assert me["session"]["id"] == body["session"]["id"]
        assert me["session"]["amr"] == ["pwd"]
        assert me["team"] is None and me["permissions"] == []
        assert r.headers["vary"] == "Cookie, Authorization"

        # Logging out by cookie needs the CSRF header.
        r = client.post("/v1/auth/logout")
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
        old_access = client.cookies.get("deelrx_session")
        r = client.post("/v1/auth/logout", headers={"X-CSRF-Token": client.cookies.get(CSRF_COOKIE)})
        assert r.status_code == 204, r.text
        assert client.cookies.get("deelrx_session") is None

    # The revoked session's still-unexpired access token is refused at once.
    with suite.client() as other:
        r = other.get("/v1/auth/me", headers={"Cookie": f"deelrx_session={old_access}"})
        assert r.status_code == 401, r.text
        assert r.json()["code"] in ("session_expired", "unauthenticated")

    events = _audit_events(
        suite.nats_url,
        {
            "user.signed_up",
            "user.email_verified",
            "auth.login_failed",
            "auth.login_succeeded",
            "session.created",
            "session.revoked",
        },
        started,
        user_id=body["user"]["id"],
    )
    mine = [e for e in events if e.actor.user_id == body["user"]["id"] or e.target.id == body["user"]["id"]]
    types = {e.type for e in mine}
    assert {
        "user.signed_up",
        "user.email_verified",
        "auth.login_succeeded",
        "session.created",
        "session.revoked",
    } <= types, types
    for event in events:
        text = event.SerializeToString()
        assert PASSWORD.encode() not in text


def test_body_delivery_and_bearer(suite: RunningSuite) -> None:
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0
        assert "set-cookie" not in r.headers
    with suite.client() as api:
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        r = api.get("/v1/auth/me", headers=auth)
        assert r.status_code == 200 and r.json()["user"]["email"] == email
        # A bad Bearer token is refused.
        r = api.get("/v1/auth/me", headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
        # Refresh in the body answers in the body, with a rotated refresh token.
        r = api.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
        assert r.status_code == 200, r.text
        renewed = r.json()
        assert renewed["refresh_token"] != body["refresh_token"]
        r = api.post("/v1/auth/logout", headers={"Authorization": f"Bearer {renewed['access_token']}"})
        assert r.status_code == 204
        r = api.get("/v1/auth/me", headers={"Authorization": f"Bearer {renewed['access_token']}"})
        assert r.status_code == 401


def test_wrong_password_and_unknown_email_answer_the_same(suite: RunningSuite) -> None:
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
        wrong = client.post("/v1/auth/login", json={"email": email, "password": "not the password"})
        unknown = client.post("/v1/auth/login", json={"email": new_email(), "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda b: {k: v for k, v in b.items() if k != "request_id"}  # noqa: E731
    assert strip(wrong.json()) == strip(unknown.json())
    assert wrong.json()["code"] == "invalid_credentials"


def test_signup_does_not_reveal_existing_accounts(suite: RunningSuite) -> None:
    email = new_email()
    with suite.client() as client:
        sign_up_and_verify(suite, client, email)
        again = client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD + "x", "name": "Eve"})
        fresh = client.post("/v1/auth/signup", json={"email": new_email(), "password": PASSWORD, "name": "Bob"})
    assert again.status_code == fresh.status_code == 201
    assert again.json() == fresh.json()


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "malformed_request"),
        ({"json": {"email": "a@example.com", "password": 5, "name": "x"}}, 422, "validation_error"),
        (
            {"json": {"email": "a@example.com", "password": "p" * 12, "name": "x", "admin": True}},
            422,
            "validation_error",
        ),
        (
            {"content": b"email=a", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported_media_type",
        ),
        (
            {"content": b"{" + b" " * 70_000 + b"}", "headers": {"Content-Type": "application/json"}},
            413,
            "payload_too_large",
        ),
        (
            {
                "json": {"email": "a@example.com", "password": "p" * 12, "name": "x"},
                "headers": {"Origin": "https://evil.example"},
            },
            403,
            "csrf_failed",
        ),
        (
            {
                "json": {"email": "a@example.com", "password": "p" * 12, "name": "x"},
                "headers": {"Sec-Fetch-Site": "cross-site"},
            },
            403,
            "csrf_failed",
        ),
    ],
)
def test_bad_requests_get_clear_4xx(suite: RunningSuite, kwargs: dict, status: int, code: str) -> None:
    with suite.client() as client:
        r = client.post("/v1/auth/signup", **kwargs)
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["code"] == code and problem["status"] == status
    assert problem["type"].endswith("/" + code) and problem["request_id"]


def test_operations_endpoints(suite: RunningSuite) -> None:
    with suite.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        jwks = client.get("/.well-known/jwks.json").json()
        assert jwks["keys"] and all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and "d" not in k for k in jwks["keys"])
        assert client.get("/openapi.json").json()["paths"]["/v1/auth/login"]
        assert client.get("/v1/nowhere").json()["code"] == "not_found"
        r = client.request("TRACE", "/healthz")
        assert r.status_code == 405 and r.json()["code"] == "method_not_allowed" and "GET" in r.headers["allow"]


def test_chunked_body_over_the_limit_is_refused(suite: RunningSuite) -> None:
    # No Content-Length: the limit is enforced while the body streams in.
    chunks = (b" " * 8192 for _ in range(10))
    with suite.client() as client:
        r = client.post("/v1/auth/signup", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
