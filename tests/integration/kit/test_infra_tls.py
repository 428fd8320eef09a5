"""TLS to NATS, Redis and PostgreSQL: the servers run with certificates from a CA this test makes
and accept only TLS; the kit connects with verification, a service runs its whole start-up (migrations,
NATS streams, Redis) over TLS, and a client that does not trust the CA, or sends no certificate
where one is required, is refused."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit import db, nats_bus
from deelrx_kit.dev_pki import CertificateAuthority
from deelrx_kit.grpc_client import service_channel
from deelrx_kit.infra_tls import nats_tls_context, postgres_tls
from deelrx_kit.mtls import TlsFiles
from deelrx_kit.settings import Settings
from deploy.local import infra
from services.sessions.main import bootstrap
from tests.integration.harness import eventually


@dataclass
class TlsInfra:
    nats_url: str
    redis_url: str
    postgres_url: str
    client: TlsFiles
    stranger: TlsFiles  # a certificate from another CA


@pytest.fixture(scope="module")
def tls_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsInfra]:
    base = tmp_path_factory.mktemp("tls-infra")
    ca = CertificateAuthority.create(base / "pki")
    server = ca.issue(base / "pki", "infra")
    client = ca.issue(base / "pki", "sessions")
    other = CertificateAuthority.create(base / "other", name="Another CA")
    stranger = other.issue(base / "other", "sessions")
    # PostgreSQL runs as another user, which must traverse the path to its data directory; pytest's
    # own temporary root is made private again whenever any pytest session starts, so use /tmp.
    pg_root = Path(tempfile.mkdtemp(prefix="deelrx-tls-pg-"))
    procs = [
        infra.start_nats(base / "nats", tls=server),
        infra.start_redis(base / "redis", tls=server),
        infra.start_postgres(pg_root / "pg", tls=server),
    ]
    try:
        yield TlsInfra(procs[0].url, procs[1].url, procs[2].url, client, stranger)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(pg_root, ignore_errors=True)


def _settings(t: TlsInfra, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "nats_url": t.nats_url,
        "nats_tls_ca_file": str(t.client.ca),
        "nats_tls_cert_file": str(t.client.cert),
        "nats_tls_key_file": str(t.client.key),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_nats_over_tls(tls_infra: TlsInfra) -> None:
    assert tls_infra.nats_url.startswith("tls://")
    nc = await nats_bus.connect(tls_infra.nats_url, "test", tls=nats_tls_context(_settings(tls_infra)))
    try:
        assert nc.connected_url is not None and nc.client_id is not None
        js = nc.jetstream()
        await nats_bus.ensure_streams(js)
        ack = await js.publish(f"{nats_bus.AUDIT_SUBJECT_PREFIX}tls.test", b"over tls")
        assert ack.seq >= 1
    finally:
        await nc.close()


@pytest.mark.parametrize("who", ["no client certificate", "untrusted server CA", "plaintext"])
async def test_nats_refuses(tls_infra: TlsInfra, who: str) -> None:
    if who == "no client certificate":
        kwargs = {"tls": ssl.create_default_context(cafile=str(tls_infra.client.ca))}
    elif who == "untrusted server CA":
        ctx = ssl.create_default_context(cafile=str(tls_infra.stranger.ca))
        ctx.load_cert_chain(str(tls_infra.stranger.cert), str(tls_infra.stranger.key))
        kwargs = {"tls": ctx}
    else:
        kwargs = {}
    url = tls_infra.nats_url.replace("tls://", "nats://") if who == "plaintext" else tls_infra.nats_url
    with pytest.raises(Exception):  # noqa: B017 - nats-py raises several kinds here
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0, **kwargs)
        try:
            await nc.flush(timeout=2)
        finally:
            await nc.close()


async def test_redis_over_tls(tls_infra: TlsInfra) -> None:
    assert tls_infra.redis_url.startswith("rediss://")
    redis = Redis.from_url(tls_infra.redis_url, socket_timeout=5)
    try:
        await redis.set("tls-test", "ok")
        assert await redis.get("tls-test") == b"ok"
    finally:
        await redis.aclose()


async def test_redis_refuses_an_untrusting_client_and_plaintext(tls_infra: TlsInfra) -> None:
    stranger = tls_infra.stranger
    wrong_ca = tls_infra.redis_url.split("?")[0] + (
        f"?ssl_ca_certs={stranger.ca}&ssl_certfile={stranger.cert}&ssl_keyfile={stranger.key}&ssl_cert_reqs=required"
    )
    plaintext = tls_infra.redis_url.split("?")[0].replace("rediss://", "redis://")
    for url in (wrong_ca, plaintext):
        redis = Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        try:
            with pytest.raises(Exception):  # noqa: B017 - SSL or connection errors, depending on the side
                await redis.ping()
        finally:
            await redis.aclose()


async def test_postgres_over_verified_tls(tls_infra: TlsInfra) -> None:
    assert "sslmode=verify-full" in tls_infra.postgres_url
    engine = db.create_engine(tls_infra.postgres_url, "public")
    try:
        async with engine.connect() as conn:
            encrypted = await conn.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        assert encrypted is True
    finally:
        await engine.dispose()


async def test_postgres_refuses_an_untrusted_server_and_plaintext(tls_infra: TlsInfra) -> None:
    wrong_ca = tls_infra.postgres_url.replace(str(tls_infra.client.ca), str(tls_infra.stranger.ca))
    plaintext = tls_infra.postgres_url.split("?")[0] + "?sslmode=disable"
    for url in (wrong_ca, plaintext):
        engine = db.create_engine(url, "public")
        try:
            with pytest.raises(Exception):  # noqa: B017 - SSL verification or pg_hba refusal
                async with engine.connect() as conn:
                    await conn.scalar(text("SELECT 1"))
        finally:
            await engine.dispose()


def test_libpq_parameters_become_an_ssl_context() -> None:
    url, tls = postgres_tls("postgresql+asyncpg://u@db:5432/x?sslmode=verify-full&application_name=a")
    assert isinstance(tls, ssl.SSLContext) and tls.check_hostname and tls.verify_mode == ssl.CERT_REQUIRED
    assert "sslmode" not in url and "application_name=a" in url
    assert postgres_tls("postgresql+asyncpg://u@db/x?sslmode=require")[1] == "require"
    assert postgres_tls("postgresql+asyncpg://u@db/x")[1] is None


async def test_a_service_starts_and_serves_with_tls_everywhere(tls_infra: TlsInfra, tmp_path: Path) -> None:
    """Migrations over PostgreSQL TLS, JetStream streams over NATS TLS, revocations in Redis over
    TLS, and the gRPC port itself on mutual TLS."""
    pki = tmp_path / "grpc"
    ca = CertificateAuthority.create(pki)
    own, gateway = ca.issue(pki, "sessions"), ca.issue(pki, "gateway")
    settings = _settings(
        tls_infra,
        data_dir=tmp_path,
        database_url=tls_infra.postgres_url,
        redis_url=tls_infra.redis_url,
        metrics_enabled=False,
        secret_key="s" * 40,
        grpc_tls_cert_file=str(own.cert),
        grpc_tls_key_file=str(own.key),
        grpc_tls_ca_file=str(own.ca),
    )
    rt = bootstrap(settings, grpc_port=0)
    await rt.start()
    try:
        await eventually(lambda: rt.js.js is not None, what="the service reached NATS over TLS")
        client_settings = settings.model_copy(
            update={
                "sessions_addr": f"127.0.0.1:{rt.grpc.port}",
                "grpc_tls_cert_file": str(gateway.cert),
                "grpc_tls_key_file": str(gateway.key),
            }
        )
        async with service_channel(client_settings, "sessions") as ch:
            stub = sessions_pb2_grpc.SessionsServiceStub(ch)
            created = await stub.CreateSession(
                sessions_pb2.CreateSessionRequest(user_id="u-tls", amr=["pwd"]), timeout=10
            )
            await stub.RevokeSession(
                sessions_pb2.RevokeSessionRequest(session_id=created.session.id, user_id="u-tls"), timeout=10
            )
    finally:
        await rt.stop()
