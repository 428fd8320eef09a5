"""The pure parts of rate limiting: what is counted, the local window, Redis URL forms."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from deelrx_kit.redis_url import connect_redis, redact
from gateway.client_ip import client_ip, parse_networks
from gateway.limit_keys import account_key, ip_key
from gateway.local_window import LocalWindow, share_of


def test_ipv6_clients_are_counted_per_64() -> None:
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:ffff:1:2:3") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("2001:db8:1:2:aaaa::1", 128) == "2001:db8:1:2:aaaa::1/128"


def test_ipv4_and_ipv4_mapped_clients_share_a_key() -> None:
    assert ip_key("203.0.113.7") == ip_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert ip_key("not an ip") == "not an ip"


def test_ipv4_mapped_peers_match_ipv4_proxy_ranges() -> None:
    trusted = parse_networks("10.0.0.0/8")
    assert client_ip("::ffff:10.1.2.3", ["198.51.100.9"], trusted) == "198.51.100.9"
    assert client_ip("::ffff:192.0.2.1", ["198.51.100.9"], trusted) == "::ffff:192.0.2.1"


def test_spellings_of_one_address_share_one_account_budget() -> None:
    secret = b"k" * 32
    assert account_key(secret, "Ada@Example.COM") == account_key(secret, " ada@example.com ")
    assert account_key(secret, "ada@example.com") != account_key(secret, "bob@example.com")
    assert "ada" not in account_key(secret, "ada@example.com")


class FakeClock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def test_local_window_holds_the_limit_over_a_rolling_minute() -> None:
    clock = FakeClock()
    window = LocalWindow(60_000, 250, clock_ms=clock)
    served = []
    for _ in range(400):
        if window.hit("k", 10).allowed:
            served.append(clock.ms)
        clock.ms += 450
    assert len(served) >= 20
    for i, t in enumerate(served):
        assert sum(1 for u in served[i:] if u - t < 60_000) <= 10


def test_local_window_reports_a_refusal_episode_once_and_forgets_old_subjects() -> None:
    clock = FakeClock()
    window = LocalWindow(60_000, 250, max_subjects=2, clock_ms=clock)
    results = [window.hit("k", 1) for _ in range(5)]
    assert [r.first_refusal for r in results] == [False, True, False, False, False]
    assert 60_000 <= results[1].retry_after_ms <= 60_250
    window.hit("a", 1)
    window.hit("b", 1)
    assert len(window) == 2


def test_replica_share_is_never_zero() -> None:
    assert share_of(100, 3) == 33
    assert share_of(1, 5) == 1


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", Redis),
        ("rediss://:pw@redis.example:6380/1", Redis),
        ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001", RedisCluster),
        ("rediss+cluster://:pw@[::1]:7000", RedisCluster),
        ("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/mymaster/2", Redis),
    ],
)
def test_every_redis_url_form_builds_a_client_without_io(url: str, kind: type) -> None:
    assert isinstance(connect_redis(url), kind)


def test_bad_redis_urls_are_refused_and_passwords_redacted() -> None:
    with pytest.raises(ValueError):
        connect_redis("redis+sentinel://10.0.0.1:26379")
    with pytest.raises(ValueError):
        connect_redis("memcached://x")
    assert "pw" not in redact("redis://:pw@host:6379/0")
