"""The Traefik and Envoy forward-auth examples agree with the gateway: they call the verify
route, pass what it needs, copy all four identity headers and let no client-sent one through.
(The nginx example is run for real in tests/e2e/test_nginx_forward_auth.py.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.routes.forward_auth_routes import IDENTITY_HEADERS

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples"
NEEDED_BY_VERIFY = {"authorization", "cookie", "origin", "sec-fetch-site", "x-csrf-token"}
IDENTITY = {h.lower() for h in IDENTITY_HEADERS}


def test_traefik_forward_auth_middlewares() -> None:
    config = yaml.safe_load((EXAMPLES / "traefik" / "dynamic.yml").read_text())["http"]
    auths = {n: m["forwardAuth"] for n, m in config["middlewares"].items() if "forwardAuth" in m}
    assert auths
    for auth in auths.values():
        assert "/v1/auth/verify" in auth["address"] and auth["trustForwardHeader"] is False
        assert NEEDED_BY_VERIFY <= {h.lower() for h in auth["authRequestHeaders"]}
        assert {h.lower() for h in auth["authResponseHeaders"]} == IDENTITY
    stripped = {h.lower() for h in config["middlewares"]["strip-identity"]["headers"]["customRequestHeaders"]}
    assert stripped == IDENTITY
    for router in config["routers"].values():
        if router["service"] != "deelrx-gateway":
            assert router["middlewares"][0] == "strip-identity" and router["middlewares"][1] in auths


def test_envoy_ext_authz_filter_chain() -> None:
    config = yaml.safe_load((EXAMPLES / "envoy" / "envoy.yaml").read_text())
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters == [
        "envoy.filters.http.header_mutation",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    removed = {m["remove"] for m in manager["http_filters"][0]["typed_config"]["mutations"]["request_mutations"]}
    assert removed == IDENTITY
    service = manager["http_filters"][1]["typed_config"]["http_service"]
    assert service["path_prefix"] == "/v1/auth/verify"
    allowed = {p["exact"] for p in service["authorization_request"]["allowed_headers"]["patterns"]}
    assert NEEDED_BY_VERIFY <= allowed
    upstream = {p["exact"] for p in service["authorization_response"]["allowed_upstream_headers"]["patterns"]}
    assert upstream == IDENTITY
    assert manager["http_filters"][1]["typed_config"]["failure_mode_allow"] is False


def test_nginx_example_replaces_every_identity_header() -> None:
    text = (EXAMPLES / "nginx" / "nginx.conf").read_text().lower()
    for header in IDENTITY:
        assert f"proxy_set_header {header}" in text
        assert f"$upstream_http_{header.replace('-', '_')}" in text
    assert "proxy_set_header x-forwarded-method $request_method;" in text
