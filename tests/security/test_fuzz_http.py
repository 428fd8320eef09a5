"""schemathesis against the gateway's own OpenAPI document: every operation, with valid
(positive) and invalid (negative) inputs, unauthenticated, with a Bearer token and with browser
cookies (+ the CSRF header). The answer is never a 5xx (503 aside: a dependency down, which
does not happen here), is JSON or problem+json as documented, and matches the documented schema.

The operations come from the document the gateway publishes, so a new endpoint is fuzzed without
editing this file. Bounded for `make test` (a few examples per operation and mode); `slow` runs
many more (DEELRX_FUZZ_EXAMPLES overrides both)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from deelrx_kit.settings import Settings
from gateway.app import create_app
from tests.e2e.flows import CSRF_COOKIE, PASSWORD, REFRESH_COOKIE, SESSION_COOKIE
from tests.security.conftest import LiveSuite, bearer, bearer_account, verified_email

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("suite", ["sqlite"], indirect=True)]


def _document() -> dict[str, Any]:
    # Built from the routes alone (no server): the same document `/openapi.json` serves.
    gateway: Any = SimpleNamespace(settings=Settings(cors_origins=""))
    return create_app(gateway).openapi()


DOCUMENT = _document()
OPERATIONS = [
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
    # Server-sent event streams never end; they are fuzzed by their parameters in tests/e2e.
    and not path.endswith("/stream")
]
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


def _examples(default: int) -> int:
    return int(os.environ.get("DEELRX_FUZZ_EXAMPLES", default))


def credentials(suite: LiveSuite, mode: str) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, cookies) for one fuzzing run; each run gets its own account (per-user rate limits)."""
    if mode == "anonymous":
        return {}, {}
    if mode == "bearer":
        return bearer(bearer_account(suite).access_token), {}
    with suite.client() as c:
        email = verified_email(suite, c)
        r = c.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200
        jar = {name: c.cookies[name] for name in (SESSION_COOKIE, REFRESH_COOKIE, CSRF_COOKIE)}
    return {"X-CSRF-Token": jar[CSRF_COOKIE]}, jar


def run_mode(
    suite: LiveSuite,
    operation: Any,
    generation: schemathesis.GenerationMode,
    mode: str,
    examples: int,
    seen: dict[int, int],
) -> None:
    # A fresh account per run keeps Bearer/cookie runs under the per-user rate limit.
    headers, cookies = credentials(suite, mode)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=generation))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=suite.base_url, headers=headers, cookies=cookies, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    except Unsatisfiable:
        # Only for negative runs: e.g. a lone unconstrained string path parameter has no invalid value.
        if generation is not schemathesis.GenerationMode.NEGATIVE:
            raise


def fuzz(suite: LiveSuite, method: str, path: str, mode: str, examples: int) -> None:
    schema = schemathesis.openapi.from_dict(httpx.get(suite.base_url + "/openapi.json").json())
    operation = schema[path][method]
    declared = DOCUMENT["paths"][path][method.lower()]
    modes = [schemathesis.GenerationMode.POSITIVE]
    if declared.get("parameters") or declared.get("requestBody"):
        modes.append(schemathesis.GenerationMode.NEGATIVE)  # nothing to break without inputs
    seen: dict[int, int] = {}
    for generation in modes:
        run_mode(suite, operation, generation, mode, examples, seen)
    print(f"{method} {path} {mode}: {sorted(seen.items())}")
    assert seen, "nothing was sent"


@pytest.mark.parametrize("mode", ["anonymous", "bearer", "cookie"])
@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_never_get_a_server_error(suite: LiveSuite, method: str, path: str, mode: str) -> None:
    fuzz(suite, method, path, mode, _examples(10))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["anonymous", "bearer"])
@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_never_get_a_server_error_long(suite: LiveSuite, method: str, path: str, mode: str) -> None:
    fuzz(suite, method, path, mode, _examples(80))
