"""Mutual TLS on a real service: who gets in, who is refused, and certificate rotation.

The sessions service runs with certificates from a CA this test generates; callers present
certificates from that CA (gateway, operator, rbac), from another CA, or none at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.dev_pki import CertificateAuthority
from deelrx_kit.grpc_client import service_channel
from deelrx_kit.mtls import TlsFiles
from deelrx_kit.runtime import ServiceRuntime
from deelrx_kit.settings import Settings
from deploy.local import infra
from services.sessions.main import bootstrap


@dataclass
class Suite:
    runtime: ServiceRuntime
    pki: Path
    certs: dict[str, TlsFiles]
    rogue: TlsFiles

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.runtime.grpc.port}"

    def settings_for(self, identity: str) -> Settings:
        files = self.certs[identity]
        return Settings(
            data_dir=self.pki,
            sessions_addr=self.address,
            grpc_tls_cert_file=str(files.cert),
            grpc_tls_key_file=str(files.key),
            grpc_tls_ca_file=str(files.ca),
        )


@pytest.fixture
async def suite(tmp_path: Path, nats_url: str, redis_url: str) -> AsyncIterator[Suite]:
    pki = tmp_path / "pki"
    ca = CertificateAuthority.create(pki)
    certs = {name: ca.issue(pki, name) for name in ("sessions", "gateway", "operator", "rbac")}
    other = CertificateAuthority.create(tmp_path / "other-ca", name="Someone else's CA")
    rogue = other.issue(tmp_path / "other-ca", "gateway")
    own = certs["sessions"]
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}",
        nats_url=nats_url,
        redis_url=redis_url,
        metrics_enabled=False,
        secret_key="test-secret-that-is-long-enough-for-anything",
        grpc_tls_cert_file=str(own.cert),
        grpc_tls_key_file=str(own.key),
        grpc_tls_ca_file=str(own.ca),
        grpc_health_port=infra.free_port(),
        env="production",  # reflection off
    )
    rt = bootstrap(settings, grpc_port=0)
    await rt.start()
    try:
        yield Suite(rt, pki, certs, rogue)
    finally:
        await rt.stop()


def _raw_channel(address: str, *, ca: Path, cert: TlsFiles | None) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=cert.key.read_bytes() if cert else None,
        certificate_chain=cert.cert.read_bytes() if cert else None,
    )
    return grpc.aio.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", "sessions")])


async def _jwks(ch: grpc.aio.Channel) -> sessions_pb2.GetJwksResponse:
    return await sessions_pb2_grpc.SessionsServiceStub(ch).GetJwks(sessions_pb2.GetJwksRequest(), timeout=5)


async def _status(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_the_gateway_certificate_is_served(suite: Suite) -> None:
    async with service_channel(suite.settings_for("gateway"), "sessions") as ch:
        reply = await _jwks(ch)
    assert '"keys"' in reply.jwks_json


async def test_a_client_without_a_certificate_is_refused(suite: Suite) -> None:
    async with _raw_channel(suite.address, ca=suite.certs["gateway"].ca, cert=None) as ch:
        assert await _status(_jwks(ch)) == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_refused(suite: Suite) -> None:
    async with _raw_channel(suite.address, ca=suite.certs["gateway"].ca, cert=suite.rogue) as ch:
        assert await _status(_jwks(ch)) == grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_is_refused(suite: Suite) -> None:
    async with grpc.aio.insecure_channel(suite.address) as ch:
        assert await _status(_jwks(ch)) == grpc.StatusCode.UNAVAILABLE


async def test_a_valid_certificate_of_the_wrong_service_is_refused(suite: Suite) -> None:
    async with service_channel(suite.settings_for("rbac"), "sessions") as ch:
        assert await _status(_jwks(ch)) == grpc.StatusCode.PERMISSION_DENIED
        stub = sessions_pb2_grpc.SessionsServiceStub(ch)
        create = stub.CreateSession(sessions_pb2.CreateSessionRequest(user_id="u1"), timeout=5)
        assert await _status(create) == grpc.StatusCode.PERMISSION_DENIED


async def test_only_the_operator_may_rotate_signing_keys(suite: Suite) -> None:
    request = sessions_pb2.RotateSigningKeyRequest()
    async with service_channel(suite.settings_for("gateway"), "sessions") as ch:
        rotate = sessions_pb2_grpc.SessionsServiceStub(ch).RotateSigningKey(request, timeout=5)
        assert await _status(rotate) == grpc.StatusCode.PERMISSION_DENIED
    async with service_channel(suite.settings_for("operator"), "sessions") as ch:
        rotate = sessions_pb2_grpc.SessionsServiceStub(ch).RotateSigningKey(request, timeout=5)
        assert await _status(rotate) == grpc.StatusCode.OK
        # ... and the operator, allowed to rotate, is still not the gateway.
        assert await _status(_jwks(ch)) == grpc.StatusCode.PERMISSION_DENIED


async def test_reflection_is_off_in_production(suite: Suite) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with service_channel(suite.settings_for("operator"), "sessions") as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in call:
                pass
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_the_plaintext_health_port_serves_only_health(suite: Suite) -> None:
    address = f"127.0.0.1:{suite.runtime.grpc.health_port}"
    async with grpc.aio.insecure_channel(address) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert await _status(_jwks(ch)) == grpc.StatusCode.UNIMPLEMENTED


async def test_the_server_picks_up_rotated_certificate_files(suite: Suite, tmp_path: Path) -> None:
    # The operator replaces the service's files with ones from a new CA (as a CA rotation would).
    new_ca = CertificateAuthority.create(tmp_path / "new-ca", name="Next CA")
    fresh = new_ca.issue(tmp_path / "new-ca", "sessions")
    gateway_next = new_ca.issue(tmp_path / "new-ca", "gateway")
    served = suite.certs["sessions"]
    for src, dst in ((fresh.cert, served.cert), (fresh.key, served.key), (fresh.ca, served.ca)):
        tmp = dst.with_suffix(".new")
        tmp.write_bytes(src.read_bytes())
        tmp.replace(dst)
    # A new connection with a certificate of the new CA gets in, without a restart ...
    async with _raw_channel(suite.address, ca=gateway_next.ca, cert=gateway_next) as ch:
        assert await _status(_jwks(ch)) == grpc.StatusCode.OK
    # ... and one from the old CA no longer does.
    async with _raw_channel(suite.address, ca=suite.certs["gateway"].ca, cert=suite.certs["gateway"]) as ch:
        assert await _status(_jwks(ch)) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_channel_picks_up_rotated_certificate_files(suite: Suite, tmp_path: Path) -> None:
    # The client's files are replaced in place by a certificate for another identity (same CA):
    # the next call presents the new certificate, which the allow-list tells apart.
    own = tmp_path / "client"
    own.mkdir()
    gateway = suite.certs["gateway"]
    files = TlsFiles(own / "tls.crt", own / "tls.key", own / "ca.crt")
    for src, dst in ((gateway.cert, files.cert), (gateway.key, files.key), (gateway.ca, files.ca)):
        dst.write_bytes(src.read_bytes())
    settings = suite.settings_for("gateway").model_copy(
        update={"grpc_tls_cert_file": str(files.cert), "grpc_tls_key_file": str(files.key)}
    )
    async with service_channel(settings, "sessions") as ch:
        ch.CHECK_INTERVAL = 0  # type: ignore[attr-defined]
        stub = sessions_pb2_grpc.SessionsServiceStub(ch)
        assert await _status(stub.GetJwks(sessions_pb2.GetJwksRequest(), timeout=5)) == grpc.StatusCode.OK
        operator = suite.certs["operator"]
        for src, dst in ((operator.cert, files.cert), (operator.key, files.key)):
            tmp = dst.with_suffix(".new")
            tmp.write_bytes(src.read_bytes())
            tmp.replace(dst)
        assert (
            await _status(stub.GetJwks(sessions_pb2.GetJwksRequest(), timeout=5)) == grpc.StatusCode.PERMISSION_DENIED
        )
