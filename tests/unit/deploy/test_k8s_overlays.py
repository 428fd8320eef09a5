"""Every kustomize overlay renders with `kubectl kustomize`, every object validates against the
Kubernetes OpenAPI schema of the version we support, and a policy holds for every workload:
limits, probes, non-root, read-only root filesystem, no privilege escalation, no service account
token, a NetworkPolicy covering it beyond the default deny, and only the Secrets it needs."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
# The Kubernetes version whose schema the objects must satisfy (docs/operations.md says so too).
KUBERNETES_VERSION = "1.33.0"
CERT_MANAGER_KINDS = {"Certificate", "Issuer", "ClusterIssuer"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}

# Which Secrets each workload may receive: one per purpose and consumer.
ALLOWED_SECRETS = {
    "gateway": {"gateway-secrets", "gateway-tls"},
    "identity": {"identity-secrets", "identity-tls"},
    "sessions": {"sessions-secrets", "sessions-tls"},
    "rbac": {"rbac-secrets", "rbac-tls"},
    "audit": {"audit-secrets", "audit-tls"},
    "detector": {"detector-tls"},
    "migrate": {"migrator-secrets"},
    "postgres": {"postgres-secrets"},
    "nats": set(),
    "redis": set(),
}


def _kubectl() -> str:
    found = Path(sys.executable).parent / "kubectl"
    return str(found) if found.exists() else shutil.which("kubectl") or "kubectl"


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    done = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def _workloads(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        present = expr["key"] in labels
        if expr["operator"] == "In" and (not present or labels[expr["key"]] not in expr["values"]):
            return False
        if expr["operator"] == "NotIn" and present and labels[expr["key"]] in expr["values"]:
            return False
        if expr["operator"] == "Exists" and not present:
            return False
    return True


def _secrets_of(pod: dict[str, Any]) -> set[str]:
    found = {v["secret"]["secretName"] for v in pod.get("volumes") or [] if "secret" in v}
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        found |= {e["secretRef"]["name"] for e in c.get("envFrom") or [] if "secretRef" in e}
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                found.add(ref["name"])
    return found


def policy_violations(docs: tuple[dict[str, Any], ...]) -> list[str]:
    """What breaks the policy, one line per violation."""
    out: list[str] = []
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        out.append("no default-deny NetworkPolicy for ingress and egress")
    for w in _workloads(docs):
        name = w["metadata"]["name"]
        template = w["spec"]["template"]
        pod, labels = template["spec"], template["metadata"].get("labels", {})
        if pod.get("automountServiceAccountToken") is not False:
            out.append(f"{name}: service account token mounted")
        if pod.get("hostNetwork") or pod.get("hostPID"):
            out.append(f"{name}: host namespaces")
        pod_sc = pod.get("securityContext") or {}
        for c in pod["containers"]:
            where = f"{name}/{c['name']}"
            sc = c.get("securityContext") or {}
            limits = (c.get("resources") or {}).get("limits") or {}
            requests = (c.get("resources") or {}).get("requests") or {}
            if not {"cpu", "memory"} <= set(limits) or not {"cpu", "memory"} <= set(requests):
                out.append(f"{where}: cpu/memory requests and limits")
            if w["kind"] != "Job" and not (c.get("readinessProbe") and c.get("livenessProbe")):
                out.append(f"{where}: readiness and liveness probes")
            if w["kind"] == "Deployment" and not c.get("startupProbe"):
                out.append(f"{where}: startup probe")
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                out.append(f"{where}: runAsNonRoot")
            if sc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{where}: read-only root filesystem")
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("privileged"):
                out.append(f"{where}: privilege escalation")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                out.append(f"{where}: capabilities not all dropped")
            seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                out.append(f"{where}: seccomp RuntimeDefault")
        # A path opened for this workload in particular (namespace-wide rules such as DNS do not count).
        covering = [p for p in policies if p["spec"]["podSelector"] and _selects(p["spec"]["podSelector"], labels)]
        if not covering:
            out.append(f"{name}: no NetworkPolicy opens a path for it")
        if not any(_selects(p["spec"]["podSelector"], labels) for p in deny):
            out.append(f"{name}: not under the default deny")
        # secretGenerator appends a content hash to the name (dev overlay).
        given = {
            re.sub(r"-[a-z0-9]{10}$", "", s) if s not in ALLOWED_SECRETS.get(name, set()) else s
            for s in _secrets_of(pod)
        }
        extra = given - ALLOWED_SECRETS.get(name, set())
        if extra:
            out.append(f"{name}: receives Secrets it does not need: {sorted(extra)}")
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_renders(overlay: str) -> None:
    kinds = {d["kind"] for d in render(overlay)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds
    assert {"Job", "Ingress", "Certificate", "ServiceAccount", "ConfigMap"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schema(overlay: str) -> None:
    import kubernetes_validate

    for doc in render(overlay):
        if doc["kind"] in CERT_MANAGER_KINDS:  # a CRD: no schema in Kubernetes itself
            assert doc["apiVersion"] == "cert-manager.io/v1"
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_follows_the_policy(overlay: str) -> None:
    assert policy_violations(render(overlay)) == []


def _mutated(change: Any) -> list[str]:
    docs = copy.deepcopy(list(render("overlays/prod")))
    change(docs)
    return policy_violations(tuple(docs))


def _deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return _deployment(docs, name)["spec"]["template"]["spec"]["containers"][0]


def test_the_policy_catches_what_it_claims_to() -> None:
    def no_limits(docs: list[dict[str, Any]]) -> None:
        _container(docs, "rbac")["resources"].pop("limits")

    def no_probe(docs: list[dict[str, Any]]) -> None:
        _container(docs, "audit").pop("readinessProbe")

    def writable_root(docs: list[dict[str, Any]]) -> None:
        _container(docs, "identity")["securityContext"]["readOnlyRootFilesystem"] = False

    def as_root(docs: list[dict[str, Any]]) -> None:
        _container(docs, "sessions")["securityContext"].pop("runAsNonRoot")
        _deployment(docs, "sessions")["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")

    def sealing_key_in_gateway(docs: list[dict[str, Any]]) -> None:
        _container(docs, "gateway")["envFrom"].append({"secretRef": {"name": "sessions-secrets"}})

    def uncovered(docs: list[dict[str, Any]]) -> None:
        for d in docs:
            if d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"] != {}:
                d["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "nobody"}}

    def no_default_deny(docs: list[dict[str, Any]]) -> None:
        docs[:] = [d for d in docs if d["metadata"]["name"] != "default-deny"]

    assert "rbac/rbac: cpu/memory requests and limits" in _mutated(no_limits)
    assert "audit/audit: readiness and liveness probes" in _mutated(no_probe)
    assert "identity/identity: read-only root filesystem" in _mutated(writable_root)
    assert "sessions/sessions: runAsNonRoot" in _mutated(as_root)
    assert "gateway: receives Secrets it does not need: ['sessions-secrets']" in _mutated(sealing_key_in_gateway)
    assert "detector: no NetworkPolicy opens a path for it" in _mutated(uncovered)
    assert "no default-deny NetworkPolicy for ingress and egress" in _mutated(no_default_deny)


def test_the_gateway_is_the_only_ingress_target_and_never_on_its_admin_port() -> None:
    docs = render("overlays/prod")
    [ingress] = [d for d in docs if d["kind"] == "Ingress"]
    assert ingress["spec"]["tls"] and ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "gateway",
        "port": {"name": "http"},
    }
    from_ingress = [
        p
        for p in docs
        if p["kind"] == "NetworkPolicy"
        and any(
            "ingress-nginx" in str(peer.get("namespaceSelector", ""))
            for rule in p["spec"].get("ingress", [])
            for peer in rule.get("from", [])
        )
    ]
    assert [p["spec"]["podSelector"] for p in from_ingress] == [{"matchLabels": {"app.kubernetes.io/name": "gateway"}}]
    assert from_ingress[0]["spec"]["ingress"][0]["ports"] == [{"port": 8080}]


def test_production_points_at_tls_infrastructure_and_runs_migrations_in_a_job() -> None:
    docs = render("overlays/prod")
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["DEELRX_ENV"] == "production"
    assert config["DEELRX_NATS_URL"].startswith("tls://")
    assert config["DEELRX_MIGRATE_ON_START"] == "false"
    assert config["DEELRX_GRPC_TLS_CA_FILE"] and config["DEELRX_GRPC_REFLECTION"] == "false"
    assert not any(d["kind"] == "Secret" for d in docs), "production Secrets are the operator's, never rendered"
    certificates = {d["spec"]["commonName"] for d in docs if d["kind"] == "Certificate"}
    assert {"gateway", "identity", "sessions", "rbac", "audit", "detector", "operator"} <= certificates
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        assert pdb["spec"].get("maxUnavailable") == 1, "a PDB must never block a drain"
