"""The OpenAPI document lists the Idempotency-Key header on creating POSTs only."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from deelrx_kit.settings import Settings
from gateway.app import create_app


def test_creating_posts_document_the_idempotency_key_header() -> None:
    gateway: Any = SimpleNamespace(settings=Settings(cors_origins=""))
    spec = create_app(gateway).openapi()
    signup = spec["paths"]["/v1/auth/signup"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in signup.get("parameters", [])]
    login = spec["paths"]["/v1/auth/login"]["post"]
    assert "Idempotency-Key" not in [p["name"] for p in login.get("parameters", [])]
