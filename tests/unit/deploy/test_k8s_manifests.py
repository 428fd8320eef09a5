"""The kustomize base describes the processes the code really has: every Deployment runs an
importable module, listens where the shared config says the others will look, and has
health probes on that port."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from deelrx_kit.settings import DEFAULT_GRPC_PORTS, SERVICES

BASE = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "base"


def _documents() -> list[dict]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    return docs


def _of_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def test_every_process_has_a_deployment_running_a_real_module() -> None:
    deployments = _of_kind("Deployment")
    assert set(deployments) == {*SERVICES, "gateway"}
    for deployment in deployments.values():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        args = container["args"]
        assert args[:2] == ["python", "-m"]
        assert importlib.util.find_spec(args[2]) is not None, args[2]
        assert container["readinessProbe"] and container["livenessProbe"]
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("service", SERVICES)
def test_service_ports_match_the_shared_configuration(service: str) -> None:
    config = _of_kind("ConfigMap")["deelrx-auth-config"]["data"]
    host, port = config[f"DEELRX_{service.upper()}_ADDR"].split(":")
    assert host == service and int(port) == DEFAULT_GRPC_PORTS[service]
    [container] = _of_kind("Deployment")[service]["spec"]["template"]["spec"]["containers"]
    assert {"name": "grpc", "containerPort": int(port)} in container["ports"]
    # Probes use the plaintext health-only port (the kubelet's gRPC probe speaks no TLS).
    health = int(config["DEELRX_GRPC_HEALTH_PORT"])
    assert {"name": "health", "containerPort": health} in container["ports"]
    assert container["readinessProbe"]["grpc"]["port"] == health
    [svc_port] = _of_kind("Service")[service]["spec"]["ports"]
    assert svc_port["port"] == int(port)
    assert _of_kind("Service")[service]["spec"]["clusterIP"] == "None", "headless, for client-side balancing"


def test_production_settings_are_not_development_defaults() -> None:
    config = _of_kind("ConfigMap")["deelrx-auth-config"]["data"]
    assert config["DEELRX_ENV"] == "production"
    assert config["DEELRX_PUBLIC_URL"].startswith("https://")
    # Secrets come from a Secret, never from the ConfigMap.
    assert not {"DEELRX_SECRET_KEY", "DEELRX_DATABASE_URL", "DEELRX_SMTP_URL"} & set(config)
