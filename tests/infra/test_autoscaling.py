"""The KEDA ScaledObjects do what docs/deploy.md says: the replicas the HPA asks for,
computed from the rendered manifests with the Kubernetes formula for an ``AverageValue``
target (what KEDA gives prometheus and kafka triggers), scale up under overload — the
generator pool *before* it saturates — and down when idle.

HPA: ``desired = ceil(total / target)``, unless ``total / (target * current)`` is within the
10% tolerance of 1 (then ``current``), clamped to ``[minReplicaCount, maxReplicaCount]``."""

from __future__ import annotations

import math
import re
from typing import Any

from services.common.metrics import GEN_INFLIGHT, GEN_QUEUED
from services.generator.config import GeneratorConfig
from tests.infra.test_manifests import render

TOLERANCE = 0.1  # the HPA's default --horizontal-pod-autoscaler-tolerance


def desired(so: dict[str, Any], total: float, target: float, current: int) -> int:
    spec = so["spec"]
    ratio = total / (target * current)
    want = current if abs(ratio - 1) <= TOLERANCE else math.ceil(total / target)
    return max(spec.get("minReplicaCount", 1), min(spec["maxReplicaCount"], want))


def _docs() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in render("overlays/cpu")}


def _generator() -> tuple[dict[str, Any], str, float, int]:
    docs = _docs()
    so = docs[("ScaledObject", "optscale-generator")]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    cm = docs[("ConfigMap", "optscale-generator")]["data"]
    slots = int(cm.get("OPTSCALE_GENERATOR_MAX_INFLIGHT", GeneratorConfig().max_inflight))
    return so, trigger["metadata"]["query"], float(trigger["metadata"]["threshold"]), slots


def _demand(query: str, inflight: list[int], queued: list[int]) -> float:
    """The query's value over pods reporting these gauges (a sum of sums of the two)."""
    names = re.findall(r"(optscale_\w+)\{", query)
    values = {GEN_INFLIGHT._name: sum(inflight), GEN_QUEUED._name: sum(queued)}
    assert sorted(names) == sorted(values), query  # demand = in flight + waiting
    assert query.count("sum(") == 2 and "+" in query, query
    return float(sum(values[n] for n in names))


def test_the_generator_pool_scales_up_before_it_saturates() -> None:
    so, query, target, slots = _generator()
    assert target < slots  # a pod counts as full before every slot is taken
    for n in (1, 2, 4, 8):
        full = _demand(query, [slots] * n, [0] * n)  # every slot busy, nothing waiting yet
        assert desired(so, full, target, n) > n, (n, full, target)
    # work waiting on 4 saturated pods asks for more still: (4 * 256 + 2000) / 192 -> 16
    busy = _demand(query, [slots] * 4, [500] * 4)
    assert desired(so, busy, target, 4) == 16
    assert desired(so, _demand(query, [slots] * 4, [10_000] * 4), target, 4) == 32  # the cap


def test_the_generator_pool_holds_at_its_target_and_shrinks_when_idle() -> None:
    so, query, target, _ = _generator()
    steady = _demand(query, [int(target)] * 4, [0] * 4)  # at the target utilisation
    assert desired(so, steady, target, 4) == 4
    assert desired(so, _demand(query, [0] * 4, [0] * 4), target, 4) == so["spec"]["minReplicaCount"]
    half = _demand(query, [int(target) // 2] * 6, [0] * 6)
    assert desired(so, half, target, 6) == 3


def test_the_verifier_pool_follows_its_consumer_lag() -> None:
    so = _docs()[("ScaledObject", "optscale-verifier")]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["metadata"]["topic"] == "optscale.candidates"
    target = float(trigger["metadata"]["lagThreshold"])
    assert desired(so, 20 * target, target, 2) > 2  # a backlog: more verifiers
    assert desired(so, 0, target, 4) == so["spec"]["minReplicaCount"]  # none: back to min
