"""Every kustomize overlay renders and validates against Kubernetes 1.37.0 schemas.

CRDs (KEDA ``keda.sh``, Strimzi ``kafka.strimzi.io``) have no schemas offline: they are
explicitly skipped and listed (``SKIPPED_CRDS``); the rest must validate strictly."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate as kv
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"
VERSION = "1.37.0"
SKIPPED_CRDS = {"keda.sh/v1alpha1", "kafka.strimzi.io/v1beta2", "cert-manager.io/v1"}
TARGETS = ["base", "overlays/cpu", "overlays/gpu"]


def render(target: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / target)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def validate(doc: dict[str, Any]) -> None:
    if doc["apiVersion"] in SKIPPED_CRDS:
        return
    kv.validate(doc, VERSION, strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_overlay_renders_and_validates(target: str) -> None:
    docs = render(target)
    assert docs
    for d in docs:
        validate(d)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "optscale-generator",
        "optscale-verifier",
        "optscale-predictor",
        "optscale-controller",
    }
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        probe = "exec" if target == "overlays/gpu" else "grpc"  # gpu has components/tls
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert c[kind][probe], (d["metadata"]["name"], kind)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["resources"]["requests"] and pod["securityContext"]["runAsNonRoot"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "optscale"  # NetworkPolicies select it


def test_tls_component_switches_every_service_to_mutual_tls() -> None:
    docs = render("overlays/gpu")
    shared = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("optscale-shared")
    )
    data = shared["data"]
    assert data["OPTSCALE_TLS_CLIENT_AUTH"] == "true"
    mounts = set()
    for d in docs:
        if d["kind"] == "Deployment":
            c = d["spec"]["template"]["spec"]["containers"][0]
            mounts |= {m["mountPath"] for m in c["volumeMounts"]}
            assert "services.common.healthcheck" in " ".join(c["readinessProbe"]["exec"]["command"])
    for key in ("OPTSCALE_TLS_CERT", "OPTSCALE_TLS_KEY", "OPTSCALE_TLS_CA"):
        assert Path(data[key]).parent.as_posix() in mounts  # the files are where the pod has them


def test_gpu_overlay_puts_models_on_gpu_pools() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in render("overlays/gpu")}
    for name in ("optscale-generator", "optscale-verifier", "optscale-predictor"):
        pod = docs[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["nodeSelector"]["optscale.io/pool"]
    ctl = docs[("Deployment", "optscale-controller")]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in ctl["containers"][0]["resources"].get("limits", {})


def test_controller_replicas_never_exceed_partitions() -> None:
    docs = render("overlays/cpu")
    so = next(
        d
        for d in docs
        if d["kind"] == "ScaledObject" and d["metadata"]["name"] == "optscale-controller"
    )
    topics = yaml.safe_load_all((K8S / "examples" / "strimzi-kafka.yaml").read_text())
    qe = next(
        t
        for t in topics
        if t["kind"] == "KafkaTopic" and t["metadata"]["name"] == "optscale.question-events"
    )
    assert so["spec"]["maxReplicaCount"] <= qe["spec"]["partitions"]


def test_examples_validate() -> None:
    for f in sorted((K8S / "examples").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                validate(d)


def test_an_invalid_manifest_fails() -> None:
    dep = next(d for d in render("base") if d["kind"] == "Deployment")
    bad = copy.deepcopy(dep)
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kv.ValidationError):
        validate(bad)
    typo = copy.deepcopy(dep)
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kv.ValidationError):
        validate(typo)
