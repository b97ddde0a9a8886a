"""OpenTelemetry in the k8s manifests (issue 19.2): every Deployment names its service
(``OTEL_SERVICE_NAME``) and its pod (``OTEL_RESOURCE_ATTRIBUTES`` from the downward API);
tracing stays off as rendered from base and the shipped overlays (the OTLP endpoint is empty);
an overlay that opts into ``components/otel`` with its collector's endpoint turns it on in
every service and lets them reach port 4317. Each pod's environment is worked out as the
kubelet would (envFrom ConfigMaps, then env with ``$(VAR)`` references to earlier variables)
and handed to ``services/common/tracing.py`` itself."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common import tracing
from tests.infra.test_manifests import K8S, KUBECTL, TARGETS, render, validate

SERVICES = ("generator", "verifier", "predictor", "controller")
COMPONENT = K8S / "components" / "otel"
ENDPOINT = "http://tempo.tracing.svc:4317"
POD = {"metadata.name": "pod-7f9c", "metadata.uid": "uid-42", "spec.nodeName": "node-3"}
REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}


def pod_env(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet makes it: its envFrom ConfigMaps (optional
    Secrets are absent), then its env in order, ``$(VAR)`` expanded from what is defined
    before it, downward-API fields from the rendered Deployment and :data:`POD`."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            env.update(maps[src["configMapRef"]["name"]])
    fields = {**POD, "metadata.namespace": deployment["metadata"]["namespace"]}
    for e in c.get("env", []):
        if "valueFrom" in e:
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
            continue
        value = e["value"]
        unresolved = [v for v in REF.findall(value) if v not in env]
        assert not unresolved, (e["name"], unresolved)  # defined later or nowhere: left as is
        env[e["name"]] = REF.sub(lambda m: env[m.group(1)], value)
    return env


def render_with_otel(tmp_path: Path, base: str, endpoint: str | None) -> list[dict[str, Any]]:
    """An overlay over ``base`` that opts into components/otel (with ``endpoint``, if given)."""
    import subprocess

    rel = os.path.relpath(K8S, tmp_path)  # kustomize refuses absolute paths
    kust: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{rel}/{base}"],
        "components": [f"{rel}/components/otel"],
    }
    if endpoint is not None:
        op = {"op": "replace", "path": "/data/OTEL_EXPORTER_OTLP_ENDPOINT", "value": endpoint}
        kust["patches"] = [
            {"target": {"kind": "ConfigMap", "name": "optscale-shared"}, "patch": yaml.dump([op])}
        ]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(tmp_path)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("target", TARGETS)
def test_every_service_names_itself_and_its_pod_and_tracing_stays_off(target: str) -> None:
    docs = render(target)
    deps = deployments(docs)
    assert set(deps) == {f"optscale-{s}" for s in SERVICES}
    for name, d in deps.items():
        env = pod_env(docs, d)
        assert env["OTEL_SERVICE_NAME"] == name
        attrs = dict(kv.split("=", 1) for kv in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
        assert attrs == {
            "service.namespace": "optscale",
            "k8s.deployment.name": name,
            "k8s.namespace.name": "optscale",
            "k8s.pod.name": POD["metadata.name"],
            "k8s.pod.uid": POD["metadata.uid"],
            "k8s.node.name": POD["spec.nodeName"],
        }
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
        assert tracing.wanted(env) is False, name  # off by default
    assert not any(d["metadata"]["name"] == "egress-otlp" for d in docs)


@pytest.mark.parametrize("base", ["overlays/cpu", "overlays/gpu"])
def test_an_overlay_with_the_otel_component_and_an_endpoint_turns_tracing_on(
    tmp_path: Path, base: str
) -> None:
    docs = render_with_otel(tmp_path, base, ENDPOINT)
    for d in docs:
        validate(d)
    for name, d in deployments(docs).items():
        env = pod_env(docs, d)
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == ENDPOINT, name
        assert env["OTEL_SERVICE_NAME"] == name
        assert tracing.wanted(env) is True, name
    (policy,) = [
        d for d in docs if d["kind"] == "NetworkPolicy" and "otlp" in d["metadata"]["name"]
    ]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "optscale"}
    assert [p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]] == [4317]


def test_the_component_alone_points_at_its_default_collector(tmp_path: Path) -> None:
    docs = render_with_otel(tmp_path, "overlays/cpu", None)
    env = pod_env(docs, deployments(docs)["optscale-verifier"])
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4317"
    assert tracing.wanted(env) is True


def test_the_tracer_reports_the_manifests_service_name_and_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller pod's environment, given to the real tracing setup (spans to an in-memory
    exporter instead of the collector): its spans carry the Deployment's name and the pod."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    docs = render_with_otel(tmp_path, "overlays/cpu", ENDPOINT)
    env = pod_env(docs, deployments(docs)["optscale-controller"])
    for k, v in env.items():
        if k.startswith("OTEL_"):
            monkeypatch.setenv(k, v)  # the SDK reads OTEL_RESOURCE_ATTRIBUTES from os.environ
    exporter = InMemorySpanExporter()
    try:
        assert tracing.configure(env, exporter=exporter)
        with tracing.span("controller", "controller.stop", question_id="q1"):
            pass
        (s,) = exporter.get_finished_spans()
    finally:
        tracing.shutdown()
    res = dict(s.resource.attributes)
    assert res["service.name"] == "optscale-controller"
    assert res["k8s.pod.name"] == POD["metadata.name"]
    assert res["k8s.namespace.name"] == "optscale"
    assert res["k8s.node.name"] == POD["spec.nodeName"]
