"""The caller allow-list and the client service config: which caller may call what, which calls
are retried, and that every service's methods are covered."""

from __future__ import annotations

import json

import pytest

from deelrx_kit import caller_policy
from deelrx_kit.grpc_client import FULL_SERVICE_NAMES, is_idempotent_read, service_config, service_methods, target


@pytest.mark.parametrize(
    ("method", "caller", "expected"),
    [
        ("/deelrx.sessions.v1.SessionsService/CreateSession", "gateway", True),
        ("/deelrx.sessions.v1.SessionsService/CreateSession", "identity", False),
        ("/deelrx.sessions.v1.SessionsService/CreateSession", None, False),
        ("/deelrx.sessions.v1.SessionsService/RotateSigningKey", "gateway", False),
        ("/deelrx.sessions.v1.SessionsService/RotateSigningKey", "operator", True),
        ("/deelrx.identity.v1.IdentityService/Authenticate", "gateway", True),
        ("/deelrx.identity.v1.IdentityService/Authenticate", "rbac", False),
        ("/deelrx.rbac.v1.RbacService/ChangeRole", "audit", False),
        # CRM backends (AuthzClient) ask questions and change nothing.
        ("/deelrx.rbac.v1.RbacService/Check", "crm-service", True),
        ("/deelrx.rbac.v1.RbacService/BatchCheck", "crm-service", True),
        ("/deelrx.rbac.v1.RbacService/LookupResources", "crm-service", True),
        ("/deelrx.rbac.v1.RbacService/ChangeRole", "crm-service", False),
        ("/deelrx.rbac.v1.RbacService/AddMember", "crm-service", False),
        ("/deelrx.sessions.v1.SessionsService/GetSession", "crm-service", False),
        ("/grpc.health.v1.Health/Check", None, True),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "gateway", False),
        ("/some.unknown.Service/Anything", "gateway", False),
        ("/deelrx.sessions.v1.SessionsService/RotateSigningKey", "*", False),
    ],
)
def test_allow_list(method: str, caller: str | None, expected: bool) -> None:
    assert caller_policy.allowed(method, caller) is expected


def test_every_service_has_a_row() -> None:
    for full_name in FULL_SERVICE_NAMES.values():
        assert "*" in caller_policy.ALLOWED_CALLERS[full_name]


def test_only_reads_are_retried() -> None:
    for full_name in FULL_SERVICE_NAMES.values():
        config = service_config(full_name)
        assert config["loadBalancingConfig"] == [{"round_robin": {}}]
        default, reads, *streams = config["methodConfig"]
        assert "retryPolicy" not in default and default["timeout"] == "10s"
        for entry in streams:
            assert "retryPolicy" not in entry and entry["timeout"] == "3600s"
        retried = {n["method"] for n in reads["name"] if n["service"] == full_name}
        for method in service_methods(full_name):
            assert (method in retried) is is_idempotent_read(method)
        json.dumps(config)  # grpc takes it as JSON
    sessions = {n["method"] for n in service_config(FULL_SERVICE_NAMES["sessions"])["methodConfig"][1]["name"]}
    assert {"GetJwks", "GetSession", "Check"} <= sessions
    assert not {"CreateSession", "Refresh", "RotateSigningKey", "RevokeSession"} & sessions
    identity = {n["method"] for n in service_config(FULL_SERVICE_NAMES["identity"])["methodConfig"][1]["name"]}
    assert not {"VerifyEmail", "VerifyMfa", "Authenticate"} & identity


def test_addresses_resolve_through_dns() -> None:
    assert target("sessions.deelrx-auth.svc:7102") == "dns:///sessions.deelrx-auth.svc:7102"
    assert target("127.0.0.1:7102") == "dns:///127.0.0.1:7102"
    assert target("ipv4:10.0.0.1:7102,10.0.0.2:7102") == "ipv4:10.0.0.1:7102,10.0.0.2:7102"
    assert target("dns:///x:1") == "dns:///x:1"


def test_streams_get_an_hour_and_every_other_call_ten_seconds() -> None:
    """A 10 s deadline cut an export through the gateway after about 30,000 events."""
    config = service_config(FULL_SERVICE_NAMES["audit"])
    deadlines = {n.get("method"): entry["timeout"] for entry in config["methodConfig"] for n in entry["name"]}
    assert deadlines["ExportEvents"] == deadlines["StreamEvents"] == "3600s"
    assert deadlines["QueryEvents"] == deadlines["VerifyChain"] == "10s"
    assert deadlines[None] == "10s"  # every method not named
    # A service without streams keeps the two entries.
    assert [e["timeout"] for e in service_config(FULL_SERVICE_NAMES["sessions"])["methodConfig"]] == ["10s", "10s"]
