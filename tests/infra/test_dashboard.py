"""The Grafana dashboard (infra/grafana/optscale.json) and the Prometheus alert rules
(infra/prometheus/optscale-alerts.yaml) name only metrics the services define, the rules'
KEDA limits are the ScaledObjects' own, and — when Debian's ``prometheus`` package is installed
— ``promtool`` checks the rules and runs their unit tests (which alert fires when).
tests/integration/test_dashboard_metrics.py checks the same names against a running stack."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "optscale.json"
RULES = ROOT / "infra" / "prometheus" / "optscale-alerts.yaml"
RULE_TESTS = ROOT / "infra" / "prometheus" / "optscale-alerts.test.yaml"
SCALED = ROOT / "infra" / "k8s" / "components" / "keda" / "scaledobjects.yaml"
METRIC = re.compile(r"\b(optscale_[a-z0-9_]+)")
# what Grafana substitutes before a query reaches Prometheus
GRAFANA_VARS = {"$__range": "10m", "$__rate_interval": "15s", "$__interval": "15s"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def rule_list() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def metric_names(exprs: list[str]) -> set[str]:
    return {m for e in exprs for m in METRIC.findall(e)}


def promql(expr: str) -> str:
    """A dashboard query as Grafana sends it (its variables replaced)."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def defined_series() -> set[str]:
    """Every series name the services' metric definitions expose (a counter ``x`` as
    ``x_total``, a histogram as ``x_bucket``/``x_sum``/``x_count``), labelled or not."""
    from prometheus_client import REGISTRY

    import services.common.metrics  # noqa: F401  (defines them in the default registry)

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names: set[str] = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ()):
            names.add(family.name + suffix)
    return names


def test_dashboard_is_importable_json_with_a_query_per_panel() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"  # chosen on import, not hard-wired
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["targets"] and p["description"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        for t in p["targets"]:
            assert METRIC.search(t["expr"]), (p["title"], t["expr"])
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]


def test_dashboard_answers_the_operators_questions() -> None:
    """Issue 19's list, each by the metric that answers it."""
    names = metric_names(dashboard_queries())
    wanted = {
        "batch progress": "optscale_controller_results_total",
        "tokens used": "optscale_controller_tokens_used_total",
        "tokens of BoN at N_max": "optscale_controller_tokens_bon_nmax_total",
        "tokens of the BoN curve's equal-accuracy k": "optscale_controller_tokens_bon_curve_total",
        "tokens used by those questions": "optscale_controller_tokens_used_bon_curve_total",
        "how many questions that counts": "optscale_controller_bon_curve_results_total",
        "N* distribution": "optscale_controller_n_star_bucket",
        "samples in flight": "optscale_generator_inflight_samples",
        "verifier batch sizes": "optscale_verifier_batch_size_bucket",
        "consumer lag": "optscale_kafka_consumer_lag",
        "cancel latency": "optscale_controller_cancel_seconds_bucket",
        "DLQ rate": "optscale_dlq_messages_total",
        "generator utilisation": "optscale_generator_slots",
        "verifier utilisation": "optscale_verifier_busy_seconds_total",
    }
    missing = {what: m for what, m in wanted.items() if m not in names}
    assert not missing


def test_every_query_and_rule_names_a_defined_metric() -> None:
    used = metric_names(dashboard_queries() + [r["expr"] for r in rule_list()])
    assert used - defined_series() == set()


def test_rules_are_complete() -> None:
    rules = rule_list()
    assert {r["alert"] for r in rules} >= {
        "OptscaleBatchStalled",
        "OptscaleDLQGrowing",
        "OptscaleVerifierLagBeyondKeda",
        "OptscaleControllerLagBeyondKeda",
        "OptscaleConsumerLagGrowing",
    }
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert re.fullmatch(r"\d+m", r["for"]), r["alert"]


def _keda_limit(name: str) -> float:
    """maxReplicaCount x the trigger's target: the most a ScaledObject's pool can absorb."""
    for so in yaml.safe_load_all(SCALED.read_text()):
        if so and so["kind"] == "ScaledObject" and so["metadata"]["name"] == name:
            (trigger,) = so["spec"]["triggers"]
            meta = trigger["metadata"]
            target = float(meta.get("lagThreshold") or meta["threshold"])
            return float(so["spec"]["maxReplicaCount"]) * target
    raise AssertionError(f"no ScaledObject {name}")


@pytest.mark.parametrize(
    ("alert", "scaled_object"),
    [
        ("OptscaleVerifierLagBeyondKeda", "optscale-verifier"),
        ("OptscaleControllerLagBeyondKeda", "optscale-controller"),
        ("OptscaleGeneratorDemandBeyondKeda", "optscale-generator"),
    ],
)
def test_keda_limits_in_the_rules_are_the_scaled_objects(alert: str, scaled_object: str) -> None:
    (rule,) = [r for r in rule_list() if r["alert"] == alert]
    threshold = float(re.search(r">\s*(\d+)", rule["expr"]).group(1))  # type: ignore[union-attr]
    assert threshold == _keda_limit(scaled_object)


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)"
)


def _promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    out = _promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rule_list())} rules found" in out.stdout


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    """infra/prometheus/optscale-alerts.test.yaml: a stalled batch fires after 20 minutes and an
    idle one never, a DLQ trickle warns and a flood pages, lag beyond KEDA's reach fires and
    absorbed lag does not."""
    out = _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query, as Grafana sends it, is valid PromQL: promtool checks it as a recording
    rule's expression."""
    rules = [{"record": f"optscale:panel_{i}", "expr": promql(e)}
             for i, e in enumerate(dashboard_queries())]
    f = tmp_path / "panels.yaml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = _promtool("check", "rules", str(f))
    assert out.returncode == 0, out.stdout + out.stderr


def test_operations_doc_explains_every_alert_and_the_dashboard() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    for r in rule_list():
        assert f"`{r['alert']}`" in doc, r["alert"]
    assert "infra/grafana/optscale.json" in doc and "Import" in doc
    for name in metric_names(dashboard_queries()) - {"optscale_requests_total"}:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert base in doc or base in (ROOT / "docs" / "conventions.md").read_text(), name
