"""How a sample's step scores become its score: shared by the step-scoring verifiers
(``optscale.engines.scoring``) and by replay, which can re-score a recorded pool from its step
scores (:func:`rescore_pool`) without generating again."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from optscale.errors import InvalidArgumentError
from optscale.pool_model import Pool

__all__ = ["AGGREGATIONS", "aggregate", "check_aggregation", "rescore_pool"]

AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": lambda xs: math.fsum(xs) / len(xs),
    "min": min,
    "last": lambda xs: xs[-1],
    "product": math.prod,
}


def check_aggregation(name: str) -> str:
    if name not in AGGREGATIONS:
        raise InvalidArgumentError("aggregation", name, f"one of {sorted(AGGREGATIONS)}")
    return name


def aggregate(name: str, step_scores: Sequence[float]) -> float:
    """The sample score in [0, 1] from its (non-empty) step scores."""
    return min(1.0, max(0.0, AGGREGATIONS[check_aggregation(name)](step_scores)))


def rescore_pool(pool: Pool, name: str) -> Pool:
    """The pool with every sample's score re-aggregated from its step scores (a sample without
    step scores keeps its score)."""
    check_aggregation(name)
    questions = [
        dataclasses.replace(
            q,
            samples=[
                dataclasses.replace(s, score=aggregate(name, s.step_scores)) if s.step_scores else s
                for s in q.samples
            ],
        )
        for q in pool.questions
    ]
    return dataclasses.replace(pool, name=f"{pool.name}[{name}]", questions=questions)
