"""docs/api.md documents every route the gateway publishes in its OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from deelrx_kit.settings import Settings
from gateway.app import create_app

API_DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"
METHODS = {"get", "post", "put", "patch", "delete"}


def published_routes() -> set[str]:
    # The OpenAPI document needs only the routes; no client or server is started.
    gateway: Any = SimpleNamespace(settings=Settings(cors_origins=""))
    spec = create_app(gateway).openapi()
    return {f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item if method in METHODS}


def documented_routes() -> set[str]:
    return set(re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /[^` ?]*)", API_DOC.read_text()))


def test_every_published_route_is_documented() -> None:
    published = published_routes()
    assert "POST /v1/auth/login" in published
    missing = sorted(published - documented_routes())
    assert not missing, f"routes missing from docs/api.md: {missing}"


def test_the_check_reads_routes_from_the_document() -> None:
    # Guards the regular expression: a route documented in the table format must be found.
    assert "POST /v1/auth/login" in documented_routes()
    assert "GET /.well-known/jwks.json" in documented_routes()
