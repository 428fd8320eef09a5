"""deploy/examples/nginx/nginx.conf for real: Debian's nginx (`auth_request`) in front of the
gateway and a small CRM app that echoes what reached it. An allowed request arrives with the
identity headers, a denied one never arrives, and a client's own X-User-Id never gets through.

`make test` installs nginx when it is missing (scripts/install_test_tools.sh) and sets
DEELRX_REQUIRE_NGINX=1, so in CI a missing nginx fails this test instead of skipping it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from deploy.local import infra
from tests.e2e.conftest import RunningSuite
from tests.e2e.flows import CSRF_COOKIE, PASSWORD
from tests.e2e.test_sessions_and_forward_auth import FIREFOX, _account, _login, _team_member

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "nginx" / "nginx.conf"


@dataclass
class CrmApp:
    """The upstream service: answers 200 with what it received, and remembers it."""

    port: int
    seen: list[dict] = field(default_factory=list)


def _crm_app() -> tuple[CrmApp, ThreadingHTTPServer]:
    app = CrmApp(infra.free_port())

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            received = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            app.seen.append(received)
            body = json.dumps(received).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", app.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return app, server


def _nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found:
        return found
    message = "nginx is not installed (make test installs Debian's nginx: apt-get install nginx)"
    if os.environ.get("DEELRX_REQUIRE_NGINX") == "1" or os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Proxy:
    url: str
    app: CrmApp


@pytest.fixture
def nginx(suite: RunningSuite, tmp_path: Path) -> Iterator[Proxy]:
    binary = _nginx_binary()
    app, server = _crm_app()
    port = infra.free_port()
    gateway_port = suite.base_url.rsplit(":", 1)[1]
    config = EXAMPLE.read_text()
    for old, new in (
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{gateway_port};"),
        ("server 127.0.0.1:9000;", f"server 127.0.0.1:{app.port};"),
        ("listen 8000;", f"listen 127.0.0.1:{port};"),
    ):
        assert old in config, old
        config = config.replace(old, new)
    temp = tmp_path / "nginx"
    (temp / "logs").mkdir(parents=True)
    temp.chmod(0o777)
    paths = "".join(
        f"    {name}_temp_path {temp / name};\n" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = config.replace("http {\n", f"http {{\n{paths}    access_log off;\n", 1)
    conf = temp / "nginx.conf"
    conf.write_text(config)
    directives = f"daemon off; pid {temp / 'nginx.pid'}; error_log {temp / 'error.log'} warn;"
    proc = subprocess.Popen([binary, "-p", str(temp), "-c", str(conf), "-g", directives])
    try:
        infra.wait_for_port(port, proc=proc)
        yield Proxy(f"http://127.0.0.1:{port}", app)
    finally:
        proc.terminate()
        proc.wait(15)
        server.shutdown()
        if (temp / "error.log").exists():
            print((temp / "error.log").read_text()[-3000:])


def test_nginx_forward_auth_allows_denies_and_strips_spoofed_identity(suite: RunningSuite, nginx: Proxy) -> None:
    email = _account(suite)
    tokens = _login(suite, email, FIREFOX)
    user_id, session_id = tokens["user"]["id"], tokens["session"]["id"]
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    app = nginx.app
    with httpx.Client(base_url=nginx.url, timeout=10) as proxy:
        # Allowed: the CRM app receives the identity the gateway vouched for.
        r = proxy.get("/crm/customers", headers=bearer)
        assert r.status_code == 200, r.text
        got = r.json()["headers"]
        assert got["x-user-id"] == user_id and got["x-session-id"] == session_id
        assert "x-team-id" not in got and "x-role" not in got  # no active team
        # Spoofed identity with a valid session: replaced by the real one.
        r = proxy.get("/crm/customers", headers={**bearer, "X-User-Id": "usr_evil", "X-Role": "owner"})
        assert r.json()["headers"]["x-user-id"] == user_id and "x-role" not in r.json()["headers"]
        # Denied: nothing reaches the app, whatever identity the client claims.
        before = len(app.seen)
        for headers in ({}, {"X-User-Id": user_id, "X-Session-Id": session_id}, {"Authorization": "Bearer forged"}):
            assert proxy.get("/crm/customers", headers=headers).status_code == 401
        # A permission the caller lacks (no team, so no reports.write): 403, not forwarded.
        assert proxy.get("/crm/reports/q3", headers=bearer).status_code == 403
        assert len(app.seen) == before
        # A revoked session is refused on its next request through the proxy.
        assert proxy.delete(f"/v1/sessions/{session_id}", headers=bearer).status_code == 204
        assert proxy.get("/crm/customers", headers=bearer).status_code == 401
        assert len(app.seen) == before


def test_nginx_forward_auth_with_browser_cookies_and_permissions(suite: RunningSuite, nginx: Proxy) -> None:
    email = _account(suite)
    user_id, team_id = _team_member(suite, email, "manager")
    with httpx.Client(base_url=nginx.url, timeout=10) as browser:
        # Login through the proxy, so the cookies belong to its origin.
        r = browser.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = browser.get("/crm/reports/q3")
        assert r.status_code == 200, r.text
        got = r.json()["headers"]
        assert (got["x-user-id"], got["x-team-id"], got["x-role"]) == (user_id, team_id, "manager")
        assert "cookie" not in got  # the suite's cookies stay out of the CRM app
        # An unsafe request authenticated by cookies needs the CSRF header, as on the gateway.
        before = len(nginx.app.seen)
        assert browser.post("/crm/customers", json={"name": "ACME"}).status_code == 403
        assert len(nginx.app.seen) == before
        csrf = {"X-CSRF-Token": browser.cookies[CSRF_COOKIE]}
        r = browser.post("/crm/customers", json={"name": "ACME"}, headers=csrf)
        assert r.status_code == 200 and r.json()["method"] == "POST"
        # Cross-site, even with the token: refused.
        r = browser.post("/crm/customers", json={}, headers={**csrf, "Origin": "https://evil.example"})
        assert r.status_code == 403
