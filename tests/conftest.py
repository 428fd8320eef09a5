"""Real infrastructure for every test: NATS with JetStream, Redis and PostgreSQL are
started once per test session on random loopback ports (from the binaries that the
Python packages ship, or with testcontainers where a Docker engine answers); SQLite
databases are files in the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.local import infra


@dataclass
class Infra:
    nats_url: str
    redis_url: str
    postgres_url: str
    data_dir: Path


def _containers(stack) -> Infra:  # pragma: no cover - only where a Docker engine runs
    from testcontainers.community.nats import NatsContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer

    pg = stack.enter_context(PostgresContainer("postgres:16-alpine", driver=None))
    rd = stack.enter_context(RedisContainer("redis:7-alpine"))
    nt = stack.enter_context(NatsContainer("nats:2.10-alpine", jetstream=True))
    return Infra(
        nats_url=nt.nats_uri(),
        redis_url=f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0",
        postgres_url=pg.get_connection_url(),
        data_dir=Path(),
    )


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    base = tmp_path_factory.mktemp("infra")
    # Containers where a Docker engine answers (DEELRX_TEST_CONTAINERS=0 opts out), else the
    # binaries the Python packages ship.
    if os.environ.get("DEELRX_TEST_CONTAINERS", "1") != "0" and infra.docker_available():
        from contextlib import ExitStack

        with ExitStack() as stack:
            found = _containers(stack)
            found.data_dir = base
            yield found
        return
    procs = [
        infra.start_nats(base / "nats"),
        infra.start_redis(base / "redis"),
        infra.start_postgres(base / "pg"),
    ]
    try:
        yield Infra(procs[0].url, procs[1].url, procs[2].url, base)
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.fixture
def nats_url(infrastructure: Infra) -> str:
    return infrastructure.nats_url


@pytest.fixture
def redis_url(infrastructure: Infra) -> str:
    return infrastructure.redis_url


async def _create_database(admin_url: str) -> str:
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(admin_url: str, name: str) -> None:
    """Drop a test's database; FORCE ends connections a stopped service may have left behind."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def postgres_url(infrastructure: Infra) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it (the server lives for the
    whole session, so thousands of leftover databases would slow every later CREATE DATABASE)."""
    url = asyncio.run(_create_database(infrastructure.postgres_url))
    yield url
    asyncio.run(drop_database(infrastructure.postgres_url, url.rsplit("/", 1)[1]))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def nats_client(nats_url: str) -> AsyncIterator:
    import nats

    nc = await nats.connect(nats_url)
    yield nc
    await nc.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Spread tests over pytest-xdist workers (`--dist loadgroup`) without starting any costly
    fixture twice: each running e2e suite (one per database) stays on one worker, and an
    integration module's tests stay together with their module-scoped services. Unit tests
    spread freely."""
    for item in items:
        if item.get_closest_marker("e2e"):
            database = getattr(item, "callspec", None) and item.callspec.params.get("suite")
            item.add_marker(pytest.mark.xdist_group(f"e2e-{database or 'any'}"))
        elif "/integration/" in item.nodeid or item.nodeid.startswith("tests/integration/"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__ if item.module else item.nodeid))
