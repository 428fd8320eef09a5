"""Which budget a request spends before any handler runs, against a real Redis."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis
from starlette.requests import Request

from gateway.cookies import cookie_names
from gateway.early_limits import limit_early
from gateway.exchange import Exchange
from gateway.ratelimit import RateLimiter
from gateway.state import AnonymousLimits


def _request(path: str, client_ip: str = "198.51.100.7", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "GET", "path": path, "headers": raw, "query_string": b"", "state": {}}
    Exchange("req_test", client_ip).install(scope)
    return Request(scope)


@pytest.fixture
async def gw(redis_url: str):  # type: ignore[no-untyped-def]
    client = aioredis.from_url(redis_url)
    yield SimpleNamespace(
        limiter=RateLimiter(client, prefix=f"t:{uuid.uuid4().hex}"),
        cookies=SimpleNamespace(names=cookie_names(False)),
        anonymous_limits=AnonymousLimits(3, 30, refresh_per_ip=2, public_per_ip=2, ipv6_prefix=64),
    )
    await client.aclose()


async def _policy(gw, request: Request) -> str | None:  # type: ignore[no-untyped-def]
    decision = await limit_early(gw, request)
    return decision.policy if decision is not None else None


async def test_each_kind_of_request_spends_its_own_budget(gw) -> None:  # type: ignore[no-untyped-def]
    assert await _policy(gw, _request("/v1/auth/login")) == "anon-ip"
    assert await _policy(gw, _request("/v1/auth/me", headers={"Authorization": "Bearer x.y.z"})) is None
    assert await _policy(gw, _request("/v1/auth/me", headers={"Cookie": "deelrx_session=abc"})) is None
    assert await _policy(gw, _request("/v1/auth/me", headers={"Cookie": "deelrx_refresh=rt_x"})) == "refresh-ip"
    assert await _policy(gw, _request("/v1/auth/refresh")) == "refresh-ip"
    assert await _policy(gw, _request("/.well-known/jwks.json")) == "public-ip"
    assert await _policy(gw, _request("/readyz")) == "public-ip"
    assert await _policy(gw, _request("/healthz")) is None


async def test_an_ipv6_allocation_shares_one_budget_and_a_refused_one_is_refused_first(gw) -> None:  # type: ignore[no-untyped-def]
    addresses = ["2001:db8:7:1::1", "2001:db8:7:1::2", "2001:db8:7:1:ffff::9", "2001:db8:7:1::abcd"]
    decisions = [await limit_early(gw, _request("/v1/auth/signup", ip)) for ip in addresses]
    assert [d.allowed for d in decisions if d is not None] == [True, True, True, False]
    other = await limit_early(gw, _request("/v1/auth/signup", "2001:db8:7:2::1"))
    assert other is not None and other.allowed


async def test_refresh_and_anonymous_budgets_are_separate(gw) -> None:  # type: ignore[no-untyped-def]
    ip = "203.0.113.50"
    for _ in range(3):
        await limit_early(gw, _request("/v1/auth/login", ip))
    assert not (await limit_early(gw, _request("/v1/auth/login", ip))).allowed  # type: ignore[union-attr]
    refresh = await limit_early(gw, _request("/v1/auth/refresh", f"::ffff:{ip}"))
    assert refresh is not None and refresh.allowed and refresh.policy == "refresh-ip"
