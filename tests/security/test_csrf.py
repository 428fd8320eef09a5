"""Cross-site request forgery: every unsafe request that is not Bearer-authenticated is judged by
Origin / Sec-Fetch-Site, and a cookie-authenticated one must also echo the session-bound
`X-CSRF-Token`. Each refusal is checked to have had no effect (the session still works or the
logout did not happen)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.flows import CSRF_COOKIE, PASSWORD
from tests.security.conftest import LiveSuite, bearer, bearer_login, verified_email

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]

EVIL = "https://evil.example"


def cookie_login(suite: LiveSuite, client: httpx.Client, email: str | None = None) -> str:
    email = email or verified_email(suite, client)
    r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return email


def refused(r: httpx.Response) -> None:
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "csrf_failed"
    assert r.headers["content-type"].startswith("application/problem+json")


def still_logged_in(client: httpx.Client) -> None:
    assert client.get("/v1/auth/me").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Origin": "http://127.0.0.1:1"},  # same host, other port: another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "garbage"},
        {"Origin": "http://[::1"},  # unparsable
    ],
)
def test_unauthenticated_unsafe_requests_from_another_site_are_refused(suite: LiveSuite, headers: dict) -> None:
    """Login CSRF and sign-up CSRF: refused before the body is even read."""
    with suite.client() as client:
        email = verified_email(suite, client)
        mark = suite.mailbox.mark()
        refused(client.post("/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=headers))
        refused(
            client.post(
                "/v1/auth/signup", json={"email": "x" + email, "password": PASSWORD, "name": "X"}, headers=headers
            )
        )
        assert not client.cookies  # no session was planted
        # and nothing reached identity: no sign-up mail (refused before any call, so no wait needed)
        assert not any(("x" + email) in (m["To"] or "") for m in suite.mailbox.messages[mark:])


def test_cookie_requests_from_another_site_are_refused_even_with_the_token(suite: LiveSuite) -> None:
    with suite.client() as client:
        cookie_login(suite, client)
        token = client.cookies[CSRF_COOKIE]
        for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
            refused(client.post("/v1/auth/logout", headers={"X-CSRF-Token": token, **headers}))
            refused(client.post("/v1/auth/refresh", headers={"X-CSRF-Token": token, **headers}))
        still_logged_in(client)


def test_without_origin_and_fetch_metadata_the_token_decides(suite: LiveSuite) -> None:
    """Old browsers and non-browser clients send neither header: the session-bound token still guards."""
    with suite.client() as client:
        cookie_login(suite, client)
        refused(client.post("/v1/auth/logout"))
        still_logged_in(client)
        r = client.post("/v1/auth/logout", headers={"X-CSRF-Token": client.cookies[CSRF_COOKIE]})
        assert r.status_code == 204, r.text
        assert client.get("/v1/auth/me").status_code == 401


def test_same_origin_and_user_initiated_requests_pass(suite: LiveSuite) -> None:
    with suite.client() as client:
        for headers in ({"Origin": suite.base_url}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}):
            client.cookies.clear()
            cookie_login(suite, client)
            r = client.post("/v1/auth/logout", headers={"X-CSRF-Token": client.cookies[CSRF_COOKIE], **headers})
            assert r.status_code == 204, (headers, r.text)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]
)
def test_json_smuggled_in_a_simple_request_is_refused(suite: LiveSuite, content_type: str) -> None:
    """A cross-site form or `fetch(no-cors)` can only send these types: never parsed as JSON."""
    with suite.client() as client:
        email = cookie_login(suite, client)
        token = client.cookies[CSRF_COOKIE]
        body = json.dumps({"email": email, "password": PASSWORD})
        headers = {"Content-Type": content_type} if content_type else {}
        if content_type.startswith("application/x-www-form"):
            body = f"{body}="  # the classic form-encoded JSON trick: one key that is the whole JSON
        for path in ("/v1/auth/login", "/v1/auth/logout", "/v1/auth/refresh"):
            r = client.post(path, content=body, headers={**headers, "X-CSRF-Token": token})
            assert r.status_code == 415, (path, content_type, r.text)
            assert r.json()["code"] == "unsupported_media_type"
        still_logged_in(client)


@pytest.mark.parametrize("override", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"])
def test_method_override_headers_are_ignored(suite: LiveSuite, override: str) -> None:
    with suite.client() as client:
        cookie_login(suite, client)
        # A GET that asks to be a POST is still a GET: logout is not reachable by a link.
        r = client.get("/v1/auth/logout", headers={override: "POST"})
        assert r.status_code == 405, r.text
        r = client.get("/v1/auth/logout?_method=POST")
        assert r.status_code == 405, r.text
        still_logged_in(client)
        # A POST that claims to be a GET still needs the token.
        refused(client.post("/v1/auth/logout", headers={override: "GET"}))
        refused(client.post("/v1/auth/logout?_method=GET"))
        still_logged_in(client)


def test_missing_tampered_and_foreign_tokens_are_refused(suite: LiveSuite) -> None:
    with suite.client() as victim, suite.client() as attacker:
        cookie_login(suite, victim)
        cookie_login(suite, attacker)
        own = victim.cookies[CSRF_COOKIE]
        foreign = attacker.cookies[CSRF_COOKIE]
        tampered = own[:-2] + ("AA" if not own.endswith("AA") else "BB")
        refused(victim.post("/v1/auth/logout"))  # missing
        refused(victim.post("/v1/auth/logout", headers={"X-CSRF-Token": ""}))
        refused(victim.post("/v1/auth/logout", headers={"X-CSRF-Token": tampered}))
        refused(victim.post("/v1/auth/logout", headers={"X-CSRF-Token": foreign}))
        # Double submit with a value the attacker knows (cookie tossing): the token is bound to the session.
        victim.cookies.set(CSRF_COOKIE, foreign)
        refused(victim.post("/v1/auth/logout", headers={"X-CSRF-Token": foreign}))
        victim.cookies.set(CSRF_COOKIE, tampered)
        refused(victim.post("/v1/auth/logout", headers={"X-CSRF-Token": tampered}))
        victim.cookies.set(CSRF_COOKIE, own)
        still_logged_in(victim)


def test_a_token_from_before_a_relogin_is_refused(suite: LiveSuite) -> None:
    with suite.client() as client:
        email = cookie_login(suite, client)
        old = client.cookies[CSRF_COOKIE]
        r = client.post("/v1/auth/logout", headers={"X-CSRF-Token": old})
        assert r.status_code == 204
        cookie_login(suite, client, email)
        new = client.cookies[CSRF_COOKIE]
        assert new != old
        client.cookies.set(CSRF_COOKIE, old)
        refused(client.post("/v1/auth/logout", headers={"X-CSRF-Token": old}))
        client.cookies.set(CSRF_COOKIE, new)
        still_logged_in(client)


def test_bearer_requests_need_no_csrf_token_and_ignore_cookies(suite: LiveSuite) -> None:
    """Bearer credentials are never sent by a browser on its own, so CSRF rules do not apply;
    a bad Bearer never falls back to the cookies that ride along."""
    with suite.client() as client:
        email = cookie_login(suite, client)
        with suite.client() as api:
            account = bearer_login(api, email)
        r = client.get("/v1/auth/me", headers=bearer("not-a-jwt"))
        assert r.status_code == 401
        r = client.post("/v1/auth/logout", headers={"Origin": EVIL, **bearer(account.access_token)})
        assert r.status_code == 204, r.text
        still_logged_in(client)  # the cookie session is another session
