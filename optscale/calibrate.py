"""Choose alpha / s_min on a *dev* pool by the accuracy-tokens trade-off.

Rule (documented, deterministic): replay the policy (OptScale^0 by default) on the dev pool at
N_max for every (alpha, s_min) of the grid, and BoN at the same N_max. Among the grid points
whose accuracy is at least ``BoN accuracy - tolerance``, pick the one with the fewest tokens
per question (ties: higher accuracy, then larger alpha, larger s_min). If none qualifies, pick
the most accurate point (ties: fewer tokens). The chosen parameters are written to a JSON file
that ``optscale replay --params`` and ``optscale solve --params`` read; test pools are never
looked at here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optscale.errors import DataError, InvalidArgumentError
from optscale.pools import Pool
from optscale.replay import ReplayConfig, replay

ALPHA_GRID: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
S_MIN_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)


@dataclass(slots=True)
class GridPoint:
    alpha: float
    s_min: float
    accuracy: float
    tokens: float
    samples: float


@dataclass(slots=True)
class Calibration:
    policy: str
    n_max: int
    alpha: float
    s_min: float
    accuracy: float
    tokens: float
    bon_accuracy: float
    bon_tokens: float
    tolerance: float
    qualified: bool
    dev_pool: str
    dev_questions: int
    orders: int
    seed: int
    grid: list[GridPoint] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "n_max": self.n_max,
            "alpha": self.alpha,
            "s_min": self.s_min,
            "dev_accuracy": self.accuracy,
            "dev_tokens_per_question": self.tokens,
            "dev_bon_accuracy": self.bon_accuracy,
            "dev_bon_tokens_per_question": self.bon_tokens,
            "tolerance": self.tolerance,
            "qualified": self.qualified,
            "dev_pool": self.dev_pool,
            "dev_questions": self.dev_questions,
            "orders": self.orders,
            "seed": self.seed,
            "rule": "fewest tokens with accuracy >= BoN accuracy - tolerance at N_max",
            "grid": [
                {"alpha": g.alpha, "s_min": g.s_min, "accuracy": g.accuracy,
                 "tokens_per_question": g.tokens, "samples_per_question": g.samples}
                for g in self.grid
            ],
        }


def choose(points: Sequence[GridPoint], bon_accuracy: float, tolerance: float) -> tuple[
    GridPoint, bool
]:
    if not points:
        raise InvalidArgumentError("grid", [], "empty calibration grid")
    ok = [g for g in points if g.accuracy >= bon_accuracy - tolerance - 1e-12]
    if ok:
        return min(ok, key=lambda g: (g.tokens, -g.accuracy, -g.alpha, -g.s_min)), True
    return min(points, key=lambda g: (-g.accuracy, g.tokens)), False


def calibrate(
    dev: Pool,
    *,
    policy: str = "optscale0",
    n_max: int | None = None,
    alphas: Sequence[float] = ALPHA_GRID,
    s_mins: Sequence[float] = S_MIN_GRID,
    tolerance: float = 0.01,
    orders: int = 20,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Calibration:
    if not dev.questions:
        raise DataError(dev.name, "dev pool is empty")
    n = n_max or dev.min_samples
    if n < 1 or n > dev.min_samples:
        raise InvalidArgumentError(
            "n_max", n, f"must be in [1, {dev.min_samples}] (smallest per-question count)"
        )
    base = replay(dev, ReplayConfig(policies=("bon",), n_max=(n,), orders=orders, seed=seed))
    bon = base.cell("bon", n)
    points: list[GridPoint] = []
    for a in alphas:
        for s in s_mins:
            r = replay(
                dev,
                ReplayConfig(
                    policies=(policy,), n_max=(n,), orders=orders, seed=seed, alpha=a, s_min=s
                ),
            )
            c = r.cell(policy, n)
            points.append(
                GridPoint(a, s, c.accuracy, c.tokens_per_question, c.samples_per_question)
            )
            if progress is not None:
                progress(1)
    best, qualified = choose(points, bon.accuracy, tolerance)
    return Calibration(
        policy=policy, n_max=n, alpha=best.alpha, s_min=best.s_min, accuracy=best.accuracy,
        tokens=best.tokens, bon_accuracy=bon.accuracy, bon_tokens=bon.tokens_per_question,
        tolerance=tolerance, qualified=qualified, dev_pool=dev.name,
        dev_questions=len(dev.questions), orders=orders, seed=seed, grid=points,
    )


def write_params(cal: Calibration, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(cal.as_dict(), indent=2) + "\n", encoding="utf-8")


def read_params(path: str | Path) -> dict[str, float]:
    """alpha and s_min from a calibrate output file (also accepts a plain {alpha, s_min})."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(str(p), f"cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}:{exc.lineno}", f"not valid JSON ({exc.msg})") from exc
    out: dict[str, float] = {}
    for k in ("alpha", "s_min"):
        v = data.get(k) if isinstance(data, dict) else None
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise DataError(str(p), f"missing or non-numeric {k!r}")
        out[k] = float(v)
    return out
