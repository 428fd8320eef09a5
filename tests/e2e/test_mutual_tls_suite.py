"""The whole suite with mutual TLS on every internal hop (a CA this run generates, as
`DEELRX_DEV_MTLS=1 make run` does): the gateway signs a user up and in through identity and
sessions, and the running services refuse callers without a certificate, with a certificate from
another CA, or with a valid certificate of a service the allow-list does not name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from deelrx.identity.v1 import identity_pb2, identity_pb2_grpc
from deelrx.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from deelrx_kit.dev_pki import CertificateAuthority
from deelrx_kit.mtls import TlsFiles
from deploy.local.launcher import Suite
from tests.conftest import Infra
from tests.e2e.conftest import Mailbox, RunningSuite
from tests.e2e.flows import PASSWORD, new_email, sign_up_and_verify
from tests.suite_launcher import launch_suite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mtls_suite(
    infrastructure: Infra, smtp: tuple[Mailbox, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningSuite, Suite]]:
    data_dir = tmp_path_factory.mktemp("suite-mtls")
    with launch_suite(
        infrastructure, smtp, data_dir, "sqlite", extra_env={"DEELRX_DEV_MTLS": "1"}, timeout=90
    ) as suite:
        assert suite.launcher is not None and suite.launcher.tls, "DEELRX_DEV_MTLS=1 turns on the development CA"
        yield suite, suite.launcher


def _channel(address: str, service: str, ca: Path, cert: TlsFiles | None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        ca.read_bytes(),
        cert.key.read_bytes() if cert else None,
        cert.cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", service)])


def _authenticate(ch: grpc.Channel) -> grpc.StatusCode:
    stub = identity_pb2_grpc.IdentityServiceStub(ch)
    try:
        stub.Authenticate(identity_pb2.AuthenticateRequest(email="a@example.com", password="x" * 12), timeout=10)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def test_the_gateway_reaches_the_services_over_mutual_tls(mtls_suite: tuple[RunningSuite, Suite]) -> None:
    suite, _ = mtls_suite
    email = new_email()
    with httpx.Client(base_url=suite.base_url, timeout=20) as client:
        sign_up_and_verify(suite, client, email)
        r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert client.get("/.well-known/jwks.json").json()["keys"]
        # Readiness checks the services' health over the same mutual TLS channels.
        assert client.get("/readyz").status_code == 200


def test_the_services_refuse_callers_the_allow_list_does_not_name(
    mtls_suite: tuple[RunningSuite, Suite], tmp_path: Path
) -> None:
    suite, running = mtls_suite
    identity = suite.env["DEELRX_IDENTITY_ADDR"]
    ca = running.tls["gateway"].ca
    # The gateway's own certificate gets a domain answer (unknown account), not a refusal.
    with _channel(identity, "identity", ca, running.tls["gateway"]) as ch:
        assert _authenticate(ch) == grpc.StatusCode.UNAUTHENTICATED
    # No client certificate: the handshake fails.
    with _channel(identity, "identity", ca, None) as ch:
        assert _authenticate(ch) == grpc.StatusCode.UNAVAILABLE
    # A certificate named "gateway" from another CA: the handshake fails.
    other = CertificateAuthority.create(tmp_path / "other", name="Another CA")
    with _channel(identity, "identity", ca, other.issue(tmp_path / "other", "gateway")) as ch:
        assert _authenticate(ch) == grpc.StatusCode.UNAVAILABLE
    # A valid certificate of another service: refused per method.
    with _channel(identity, "identity", ca, running.tls["rbac"]) as ch:
        assert _authenticate(ch) == grpc.StatusCode.PERMISSION_DENIED
    with _channel(suite.env["DEELRX_SESSIONS_ADDR"], "sessions", ca, running.tls["identity"]) as ch:
        stub = sessions_pb2_grpc.SessionsServiceStub(ch)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateSession(sessions_pb2.CreateSessionRequest(user_id="u1", amr=["pwd", "otp"]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
