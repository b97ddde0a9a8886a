"""``benchmarks/pareto.py``: batch budget allocation (:mod:`optscale.allocation`) as rows of the
table — tuned on the dev half, run on the test half's orders.

Rows (one per N_max, the per-question cap):

* ``allocation`` — no batch budget: the price per token stops it (price and give-up threshold
  chosen on dev);
* ``allocation-b25`` / ``allocation-b50`` — a batch budget of 0.25x / 0.5x the tokens BoN@N_max
  spends on the **dev** half per question, times the batch's questions (the test half's
  tokens are never looked at), spent in full (price 0: a point at that budget), the give-up
  threshold chosen on dev.

P(correct | score) is the logistic fitted on the dev samples (as for ``bayes`` / ``hybrid``);
the fit's prior is the weak default (no per-question prior). A wave is 10% of the batch's
questions (at least 1): that many samples decode in parallel, one per question of highest
priority. Dev choice: the largest accuracy gain over the dev BoN curve (every k <= N_max, the
same orders) at equal served tokens, ties to fewer tokens. Batches: one per order index, every
question's ``o``-th order (as replay runs DSC).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


from optscale.allocation import AllocationConfig, PosteriorCache, allocate_orders
from optscale.bayes import CorrectnessModel
from optscale.bon_curve import BonCurve
from optscale.episode import Episode
from optscale.pools import Pool, PoolSample
from optscale.replay import sample_orders

__all__ = [
    "ALLOCATION_ROWS",
    "BUDGET_PRICE_GRID",
    "GIVE_UP_GRID",
    "PRICE_GRID",
    "WAVE_FRACTION",
    "run_allocation",
    "tune_allocation",
]

# row name -> batch budget as a fraction of dev BoN@N_max tokens per question (None: no budget)
ALLOCATION_ROWS: dict[str, float | None] = {
    "allocation": None,
    "allocation-b25": 0.25,
    "allocation-b50": 0.5,
}
ALLOCATION_LABELS = {
    "allocation": "Batch allocation (price)",
    "allocation-b25": "Batch allocation (0.25x budget)",
    "allocation-b50": "Batch allocation (0.5x budget)",
}
PRICE_GRID: tuple[float, ...] = (3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4)
BUDGET_PRICE_GRID: tuple[float, ...] = (0.0,)
GIVE_UP_GRID: tuple[float, ...] = (0.0, 0.1)
WAVE_FRACTION = 0.1


def _wave(n_questions: int) -> int:
    return max(1, round(WAVE_FRACTION * n_questions))


def run_allocation(
    half: Pool,
    n: int,
    kwargs: dict[str, Any],
    orders: Sequence[Sequence[Sequence[PoolSample]]],
    cache: PosteriorCache | None = None,
) -> list[list[Episode]]:
    """Per question of ``half`` (in order): its episodes, one per order index.
    ``kwargs``: ``budget_per_question`` (None: no budget), ``price``, ``give_up``,
    ``p_correct``; ``cache``: posterior fits shared by runs over the same orders."""
    nq = len(half.questions)
    per_q = kwargs.get("budget_per_question")
    cfg = AllocationConfig(
        n_max=n,
        budget=None if per_q is None else float(per_q) * nq,
        price=float(kwargs["price"]),
        give_up=float(kwargs["give_up"]),
        wave=_wave(nq),
        p_correct=kwargs["p_correct"],
    )
    got = allocate_orders({q.question_id: orders[qi] for qi, q in enumerate(half.questions)}, cfg)
    return [got[q.question_id] for q in half.questions]


def tune_allocation(
    dev: Pool,
    n: int,
    rows: Sequence[str],
    *,
    cal_orders: int,
    seed: int,
    price_grid: Sequence[float] = PRICE_GRID,
    budget_price_grid: Sequence[float] = BUDGET_PRICE_GRID,
    give_up_grid: Sequence[float] = GIVE_UP_GRID,
) -> list[tuple[str, dict[str, Any], str]]:
    """(row, kwargs, note) per row, every choice made on ``dev``."""
    samples = [s for q in dev.questions for s in q.samples]
    pc = CorrectnessModel.fit([s.score for s in samples], [s.correct for s in samples])
    orders = [sample_orders(q, cal_orders, seed) for q in dev.questions]
    curve = BonCurve(n)
    for od in orders:
        for o in od:
            curve.add(o)
    bon_tokens = curve.points()[-1][1]
    cache: PosteriorCache = {}
    out: list[tuple[str, dict[str, Any], str]] = []
    for row in rows:
        frac = ALLOCATION_ROWS[row]
        per_q = None if frac is None else frac * bon_tokens
        prices = price_grid if frac is None else budget_price_grid
        best: tuple[float, float, dict[str, Any]] | None = None
        for price in prices:
            for give_up in give_up_grid:
                kw = {
                    "budget_per_question": per_q,
                    "price": price,
                    "give_up": give_up,
                    "p_correct": pc,
                }
                eps = [e for qe in run_allocation(dev, n, kw, orders, cache) for e in qe]
                acc = float(np.mean([e.correct for e in eps]))
                served = float(np.mean([e.served_tokens for e in eps]))
                gain = curve.standing(served, acc, n).gain
                if best is None or (gain, -served) > best[:2]:
                    best = (gain, -served, kw)
        assert best is not None
        kw = best[2]
        budget = "no budget" if per_q is None else f"budget {per_q:.0f} tok/q ({frac}x dev BoN@{n})"
        note = (
            f"{budget}, price={kw['price']:g}, give_up={kw['give_up']}, "
            f"P(correct|s) = sigmoid({pc.a:.2f} + {pc.b:.2f} s) (dev gain {100 * best[0]:+.1f} pts)"
        )
        out.append((row, kw, note))
    return out
