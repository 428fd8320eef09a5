"""Cookie attributes as a browser sees them: https mode (`__Host-` names, Secure) and the
plain-http loopback mode (no prefix, no Secure), on login, renewal by refresh and logout."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest

from tests.e2e.flows import PASSWORD
from tests.security.conftest import LiveSuite, verified_email

pytestmark = pytest.mark.e2e

ABSOLUTE_LIFETIME = 12 * 3600
ACCESS_TTL = 300


def parse(response: httpx.Response) -> dict[str, dict[str, str]]:
    """name -> attributes (lower-case keys; flags map to 'true'), from every Set-Cookie line."""
    found: dict[str, dict[str, str]] = {}
    for line in response.headers.get_list("set-cookie"):
        name, _, rest = line.partition("=")
        value, *attributes = rest.split(";")
        attrs = {"value": value}
        for attribute in attributes:
            key, _, val = attribute.strip().partition("=")
            attrs[key.lower()] = val or "true"
        found[name] = attrs
    return found


def assert_cookie_set(cookies: dict[str, dict[str, str]], prefix: str, secure: bool) -> None:
    session, refresh, csrf = (cookies[f"{prefix}deelrx_{n}"] for n in ("session", "refresh", "csrf"))
    for cookie in (session, refresh, csrf):
        assert cookie["path"] == "/"
        assert "domain" not in cookie  # __Host- forbids it; without the prefix it would widen the scope
        assert ("secure" in cookie) is secure
    assert session.get("httponly") == "true" and session["samesite"].lower() == "lax"
    assert refresh.get("httponly") == "true" and refresh["samesite"].lower() == "strict"
    assert "httponly" not in csrf and csrf["samesite"].lower() == "strict"  # read by the page's JS
    assert int(session["max-age"]) == ACCESS_TTL
    assert ABSOLUTE_LIFETIME - 60 <= int(refresh["max-age"]) <= ABSOLUTE_LIFETIME
    assert abs(int(csrf["max-age"]) - int(refresh["max-age"])) <= 1
    device = cookies.get(f"{prefix}deelrx_device")
    if device is not None:  # issued by the account-security work; same rules when present
        assert device.get("httponly") == "true" and device["samesite"].lower() == "strict"
        assert ("secure" in device) is secure and device["path"] == "/"


def login_by_cookie(suite: LiveSuite, client: httpx.Client) -> httpx.Response:
    email = verified_email(suite, client)
    r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r


def test_https_mode_uses_host_prefixed_secure_cookies(https_suite: LiveSuite) -> None:
    prefix = "__Host-"
    with https_suite.client() as client:
        login = login_by_cookie(https_suite, client)
        cookies = parse(login)
        assert_cookie_set(cookies, prefix, secure=True)
        assert not any(name.startswith("deelrx_") for name in cookies)  # no unprefixed twin
        assert login.headers["cache-control"] == "no-store"
        # The test speaks http to the gateway (as a TLS proxy would), so the Secure cookies are
        # sent by hand, as the browser would over https.
        jar = {name: attrs["value"] for name, attrs in cookies.items()}
        header = "; ".join(f"{k}={v}" for k, v in jar.items())
        client.cookies.clear()
        r = client.get("/v1/auth/me", headers={"Cookie": header})
        assert r.status_code == 200, r.text
        csrf = jar[f"{prefix}deelrx_csrf"]
        r = client.post("/v1/auth/refresh", headers={"Cookie": header, "X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        renewed = parse(r)
        assert_cookie_set(renewed, prefix, secure=True)
        assert renewed[f"{prefix}deelrx_refresh"]["value"] != jar[f"{prefix}deelrx_refresh"]
        jar.update({name: attrs["value"] for name, attrs in renewed.items()})
        header = "; ".join(f"{k}={v}" for k, v in jar.items())
        r = client.post("/v1/auth/logout", headers={"Cookie": header, "X-CSRF-Token": jar[f"{prefix}deelrx_csrf"]})
        assert r.status_code == 204, r.text
        cleared = parse(r)
        for name in ("session", "refresh", "csrf"):
            cookie = cleared[f"{prefix}deelrx_{name}"]
            assert cookie["max-age"] == "0" and "secure" in cookie and cookie["path"] == "/"
        # The old cookies no longer authenticate.
        assert client.get("/v1/auth/me", headers={"Cookie": header}).status_code == 401


def test_https_mode_answers_carry_hsts(https_suite: LiveSuite) -> None:
    with https_suite.client() as client:
        for r in (client.get("/healthz"), client.get("/v1/auth/me"), client.get("/docs")):
            assert r.headers["strict-transport-security"].startswith("max-age=")
            assert int(r.headers["strict-transport-security"].split("=")[1].split(";")[0]) >= 31536000


@pytest.mark.parametrize("suite", ["sqlite"], indirect=True)
def test_loopback_http_mode_drops_prefix_and_secure(suite: LiveSuite) -> None:
    with suite.client() as client:
        login = login_by_cookie(suite, client)
        cookies = parse(login)
        assert_cookie_set(cookies, "", secure=False)
        assert not any(name.startswith("__Host-") for name in cookies)
        r = client.get("/healthz")
        assert "strict-transport-security" not in r.headers


def test_cookie_parser_reads_what_browsers_read() -> None:
    """The helper above agrees with the standard library on a real Set-Cookie line."""
    line = "__Host-deelrx_csrf=abc; Max-Age=43200; Path=/; SameSite=strict; Secure"
    response = httpx.Response(200, headers=[("set-cookie", line)])
    assert parse(response)["__Host-deelrx_csrf"] == {
        "value": "abc",
        "max-age": "43200",
        "path": "/",
        "samesite": "strict",
        "secure": "true",
    }
    std = SimpleCookie()
    std.load(line)
    assert std["__Host-deelrx_csrf"]["samesite"] == "strict"
