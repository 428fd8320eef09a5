"""Two installations (or test suites) sharing one NATS server, each with its own
DEELRX_NATS_CONSUMER_PREFIX and its own database: each has its own partition consumers and
legacy drain, so each stores every audit event instead of the two splitting the stream."""

from __future__ import annotations

from pathlib import Path

import nats
from sqlalchemy import func, select

from deelrx_kit import nats_bus
from deelrx_kit.audit_events import subject_for
from deelrx_kit.audit_partitions import PARTITIONS
from deelrx_kit.db import create_engine
from deelrx_kit.ids import new_id
from deploy.local import infra
from services.audit.adapters import sql
from services.audit.adapters.nats_legacy import LEGACY_DURABLE
from services.audit.adapters.nats_partitions import STREAM, durable_name
from services.audit.main import bootstrap
from tests.integration.harness import eventually, make_settings

from .conftest import event

EVENTS = 64


async def _stored(database_url: str, teams: list[str]) -> int:
    engine = create_engine(database_url, "audit")
    try:
        async with engine.connect() as conn:
            n = await conn.scalar(select(func.count()).select_from(sql.events).where(sql.events.c.team_id.in_(teams)))
    finally:
        await engine.dispose()
    return int(n or 0)


async def test_installations_with_their_own_prefix_each_store_every_event(tmp_path: Path) -> None:
    server = infra.start_nats(tmp_path / "nats")  # its own: the consumers made here are the only ones
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await nats_bus.ensure_streams(js)
    urls = {p: f"sqlite+aiosqlite:///{tmp_path / p}.db" for p in ("blue-", "green-")}
    services = []
    try:
        for prefix, url in urls.items():
            (tmp_path / prefix).mkdir()
            settings = make_settings(tmp_path / prefix, url, server.url, nats_consumer_prefix=prefix)
            rt = bootstrap(settings, grpc_port=0)
            await rt.start()
            services.append(rt)
        teams = [new_id("tm") for _ in range(16)]
        for i in range(EVENTS):
            e = event("team.updated", team_id=teams[i % len(teams)])
            await js.publish(subject_for(e), e.SerializeToString(), headers={"Nats-Msg-Id": e.id})
        for url in urls.values():
            assert await eventually(lambda u=url: _stored(u, teams), lambda n: n >= EVENTS, timeout=60) == EVENTS
        names = {c.name for c in await js.consumers_info(STREAM)}
        for prefix in urls:
            assert {prefix + durable_name(p) for p in range(PARTITIONS)} <= names
            assert prefix + LEGACY_DURABLE in names
        assert not {durable_name(p) for p in range(PARTITIONS)} & names  # nothing unprefixed
    finally:
        for rt in services:
            await rt.stop()
        await nc.close()
        server.stop()
