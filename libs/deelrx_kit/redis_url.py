"""`DEELRX_REDIS_URL` in its four forms, as one asyncio client.

- `redis://[:password@]host:port/db` and `unix:///path.sock`: one server;
- `rediss://...`: the same over TLS (`?ssl_cert_reqs=`, `?ssl_ca_certs=` as redis-py reads them);
- `redis+sentinel://[:password@]host1:port1,host2:port2/service-name[/db]` (`rediss+sentinel://`
  for TLS): the master that the Sentinels name, found again after a failover;
- `redis+cluster://[:password@]host1:port1,host2:port2` (`rediss+cluster://`): a Redis Cluster,
  from any of its nodes.

Every client gets the same short socket timeouts: a Redis that hangs must cost a request
milliseconds, not seconds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

AnyRedis = Redis | RedisCluster

DEFAULT_TIMEOUT_SECONDS = 0.5


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):  # [ipv6]:port
            host, _, port = part[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        hosts.append((host, int(port) if port else default_port))
    if not hosts:
        raise ValueError("the Redis URL names no host")
    return hosts


def _password(netloc: str) -> str | None:
    if "@" not in netloc:
        return None
    userinfo = netloc.rsplit("@", 1)[0]
    _, _, password = userinfo.partition(":")
    return unquote(password) or None


def connect_redis(url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> AnyRedis:
    """A lazily connecting client for `url` (no I/O here)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    common: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if scheme in ("redis", "rediss", "unix"):
        # (A BlockingConnectionPool costs ~60 us of CPU per command here; callers that burst,
        # like the rate limiter, cap their own calls in flight instead.)
        return Redis.from_url(url, **common)
    tls = scheme.startswith("rediss+")
    password = _password(parts.netloc)
    if scheme in ("redis+cluster", "rediss+cluster"):
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc, 6379)]
        return RedisCluster(startup_nodes=nodes, password=password, ssl=tls, **common)
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("a Sentinel URL names the service: redis+sentinel://host:26379/mymaster")
        service = unquote(path[0])
        db = int(path[1]) if len(path) > 1 else 0
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _hosts(parts.netloc, 26379),
            sentinel_kwargs={**common},
            password=password,
            db=db,
            ssl=tls,
            **common,
        )
        master: Redis = sentinel.master_for(service)
        return master
    raise ValueError(f"unsupported Redis URL scheme {scheme!r}")


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return url.replace(parts.netloc, "***@" + parts.netloc.rsplit("@", 1)[1], 1)
