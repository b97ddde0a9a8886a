"""Tokens saved against the BoN curve (issue 19.1), end to end inside the controller: a question
submitted with ``optscale submit --params`` whose params record a dev BoN curve adds its tokens
per scored sample x k_eq to ``optscale_controller_tokens_bon_curve_total`` when its result is
published; a question without such params adds nothing there (it is still counted as used)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from optscale.commands import submit
from optscale.types import Question
from services.common.metrics import observe_bon_curve
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted

CURVE_TOTAL = "optscale_controller_tokens_bon_curve_total"
USED_TOTAL = "optscale_controller_tokens_used_bon_curve_total"
COUNTED = "optscale_controller_bon_curve_results_total"


def value(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def counters() -> dict[str, float]:
    return {n: value(n) for n in (CURVE_TOTAL, USED_TOTAL, COUNTED)}


def added(before: dict[str, float]) -> dict[str, float]:
    return {n: value(n) - v for n, v in before.items()}


def _params_with_curve(tmp_path: Path) -> str:
    """best-of-3 params whose dev curve reaches the policy's dev accuracy 0.6 at k = 1.5"""
    data = {
        "policy": "bon",
        "n_max": 3,
        "alpha": 0.9,
        "s_min": 0.8,
        "policy_params": {},
        "dev": {
            "accuracy": 0.6,
            "bon_curve": [
                {"k": 1, "tokens_per_question": 10.0, "accuracy": 0.4},
                {"k": 2, "tokens_per_question": 20.0, "accuracy": 0.8},
                {"k": 3, "tokens_per_question": 30.0, "accuracy": 0.9},
            ],
        },
        "tuned_on": {"pool": "p", "pool_sha256": "0", "split": "dev", "question_ids": ["d"]},
    }
    path = tmp_path / "params.json"
    path.write_text(json.dumps(data))
    return str(path)


def _submitted_with_params(q: str, params: str) -> Any:
    """The Submitted event ``optscale submit --params`` sends."""
    ap = argparse.ArgumentParser()
    submit.add_arguments(ap)
    args = ap.parse_args(["q.jsonl", "--params", params])
    submit.apply_params(args, [q])
    (ev,) = submit.build_events(args, [Question(q, f"question {q}?", None)])
    return ev


async def test_a_question_with_curve_params_counts_tokens_per_sample_times_k_eq(
    store: Any, tmp_path: Path
) -> None:
    w, _, pub = harness.worker(store)
    await w.assign({0})
    before = counters()
    await w.handle(_submitted_with_params("c", _params_with_curve(tmp_path)), 0)
    await settle()
    for i, tokens in enumerate((10, 20, 60)):  # 90 tokens over 3 scored samples: 30 each
        await w.handle(scored("c", i, 0.5, tokens=tokens), 0)
    (r,) = results(pub)
    assert (r.samples_used, r.completion_tokens) == (3, 90)
    assert added(before) == {CURVE_TOTAL: pytest.approx(30 * 1.5), USED_TOTAL: 90, COUNTED: 1}


async def test_a_question_without_curve_params_is_not_counted(store: Any) -> None:
    w, _, pub = harness.worker(store)
    await w.assign({0})
    before = counters()
    await w.handle(submitted("n", n_max=2, policy="bon", options='{"window": 3}'), 0)
    await settle()
    for i in range(2):
        await w.handle(scored("n", i, 0.5, tokens=40), 0)
    (r,) = results(pub)
    assert r.completion_tokens == 80
    assert added(before) == {CURVE_TOTAL: 0, USED_TOTAL: 0, COUNTED: 0}


def test_a_result_without_a_scored_sample_is_not_counted() -> None:
    before = counters()
    observe_bon_curve((("bon_curve_k_eq", 2.0),), {"questionId": "f", "samplesFailed": 3})
    assert added(before) == {CURVE_TOTAL: 0, USED_TOTAL: 0, COUNTED: 0}
    observe_bon_curve(
        (("bon_curve_k_eq", 2.0),),
        {"questionId": "g", "samplesUsed": 4, "completionTokens": "100"},  # int64 as text
    )
    assert added(before) == {CURVE_TOTAL: 50, USED_TOTAL: 100, COUNTED: 1}
