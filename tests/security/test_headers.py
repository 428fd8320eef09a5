"""Security headers on every class of answer: API JSON, problem+json errors (from the handler,
from the pipeline and from the framework), the docs pages, the OpenAPI document and JWKS; and
`Cache-Control: no-store` with `Vary` wherever tokens or an authenticated answer travel."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.flows import PASSWORD
from tests.security.conftest import LiveSuite, bearer, bearer_account, verified_email

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]


def assert_hardened(r: httpx.Response) -> None:
    h = r.headers
    assert h["x-content-type-options"] == "nosniff", r.url
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"
    csp = h["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp  # ASVS 3.4.3
    assert "x-request-id" in h
    assert "server" not in h  # no product/version banner
    assert "strict-transport-security" not in h  # plain-http loopback: never pin 127.0.0.1 to https


def assert_no_store(r: httpx.Response) -> None:
    assert r.headers["cache-control"] == "no-store", (r.url, r.headers)
    vary = {v.strip().lower() for v in r.headers["vary"].split(",")}
    assert {"cookie", "authorization"} <= vary


def test_every_response_class_is_hardened(suite: LiveSuite) -> None:
    account = bearer_account(suite)
    with suite.client() as c:
        answers = {
            "api": c.get("/v1/auth/me", headers=bearer(account.access_token)),
            "jwks": c.get("/.well-known/jwks.json"),
            "openapi": c.get("/openapi.json"),
            "docs page": c.get("/docs"),
            "health": c.get("/healthz"),
            "401": c.get("/v1/auth/me"),
            "404": c.get("/v1/no-such-thing"),
            "405": c.get("/v1/auth/login"),
            "415": c.post("/v1/auth/login", content="x", headers={"Content-Type": "text/plain"}),
            "400": c.post("/v1/auth/login", content="{", headers={"Content-Type": "application/json"}),
            "422": c.post("/v1/auth/login", json={"email": 1}),
            "413": c.post("/v1/auth/login", content=b"{" + b" " * 70_000, headers={"Content-Type": "application/json"}),
            "403": c.post("/v1/auth/login", json={}, headers={"Origin": "https://evil.example"}),
        }
    for name, r in answers.items():
        expected = int(name) if name.isdigit() else 200
        assert r.status_code == expected, (name, r.status_code, r.text[:200])
        assert_hardened(r)
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json"), name


def test_answers_with_secrets_or_identity_are_not_stored(suite: LiveSuite) -> None:
    with suite.client() as c:
        email = verified_email(suite, c)
        body_login = c.post("/v1/auth/login", json={"email": email, "password": PASSWORD, "token_delivery": "body"})
        assert body_login.status_code == 200 and "access_token" in body_login.json()
        assert_no_store(body_login)
        refresh_token = body_login.json()["refresh_token"]
        body_refresh = c.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
        assert body_refresh.status_code == 200
        assert_no_store(body_refresh)
        assert_no_store(c.get("/v1/auth/me", headers=bearer(body_refresh.json()["access_token"])))
        cookie_login = c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert cookie_login.status_code == 200
        assert_no_store(cookie_login)
        assert_no_store(c.get("/v1/auth/me"))
