"""Choose a stopping rule's parameters on a *dev* pool by what it gains over the best fixed N.

What is tuned: OptScale^0's (alpha, s_min) grid; for ``bayes`` and ``hybrid``
(:mod:`optscale.bayes`) P(correct | score) is fitted on the dev samples and the price per token
(and, for the hybrid, the selection: best score or weighted vote) is the grid.

Rule (documented, deterministic): replay the policy on the dev pool at N_max for every grid
point, with BoN(k) for every k <= N_max on the same orders
(:mod:`optscale.bon_curve`). Each grid point's served tokens (completed + cut at the stop,
:mod:`optscale.episode`) and accuracy get a *gain*: accuracy minus the best fixed N's accuracy
at the same tokens. The chosen point has the largest gain (ties: smaller token ratio at equal
accuracy, fewer tokens, grid order).

Stopping is *useful* only if the chosen point's gain is above ``min_gain`` and it waits past
its first batch on some questions; otherwise the scorer makes stopping pointless here (the
rule is a smaller BoN under another name, or no setting beats the curve) and
:attr:`Calibration.useful` is false with the reason in :attr:`Calibration.verdict` — the CLI
then writes no params. Test questions are never looked at here; the params record which
questions they were tuned on (:mod:`optscale.params`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optscale.episode import FinishModel
from optscale.errors import DataError, InvalidArgumentError
from optscale.params import Params, make_policy_options, pool_sha256, read_params
from optscale.policies import DEFAULT_ALPHA, DEFAULT_S_MIN
from optscale.pools import Pool
from optscale.replay import ReplayConfig, replay

__all__ = [
    "ALPHA_GRID",
    "CALIBRATABLE",
    "PRICE_GRID",
    "S_MIN_GRID",
    "Calibration",
    "GridPoint",
    "Params",
    "calibrate",
    "choose",
    "read_params",
    "write_params",
]

ALPHA_GRID: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
S_MIN_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
PRICE_GRID: tuple[float, ...] = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4)
CALIBRATABLE = ("optscale0", "bayes", "hybrid", "dsc_prior")  # policies with parameters this tunes
RULE = (
    "largest accuracy gain over the BoN curve (every k <= N_max, same orders) at equal served "
    "tokens; useful only if the gain > min_gain and the rule waits past its first batch"
)


@dataclass(slots=True)
class GridPoint:
    alpha: float
    s_min: float
    accuracy: float
    tokens: float  # served tokens per question (completed + cut at the stop)
    samples: float
    gain: float
    ratio: float | None
    single_wave: float  # fraction of episodes that never waited past the first batch
    params: dict[str, Any] = field(default_factory=dict)  # the point's further options (JSON)


@dataclass(slots=True)
class Calibration:
    policy: str
    n_max: int
    alpha: float
    s_min: float
    accuracy: float
    tokens: float
    gain: float
    ratio: float | None
    useful: bool
    verdict: str
    pool: str
    pool_sha256: str
    split: str
    question_ids: list[str]
    orders: int
    seed: int
    finish: FinishModel
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    grid: list[GridPoint] = field(default_factory=list)
    policy_params: dict[str, Any] = field(default_factory=dict)
    setting: str = ""  # the chosen point, for people

    def policy_kwargs(self) -> dict[str, Any]:
        """The chosen point as options for :func:`optscale.policies.make_policy`."""
        return make_policy_options(self.alpha, self.s_min, self.policy_params.items())

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "n_max": self.n_max,
            "alpha": self.alpha,
            "s_min": self.s_min,
            "policy_params": self.policy_params,
            "rule": RULE,
            "useful": self.useful,
            "verdict": self.verdict,
            "dev": {
                "accuracy": self.accuracy,
                "served_tokens_per_question": self.tokens,
                "gain_vs_bon_curve": self.gain,
                "token_ratio_vs_bon_curve": self.ratio,
                "bon_curve": [
                    {"k": k, "tokens_per_question": t, "accuracy": a} for k, t, a in self.curve
                ],
            },
            "tuned_on": {
                "pool": self.pool,
                "pool_sha256": self.pool_sha256,
                "split": self.split,
                "question_ids": self.question_ids,
            },
            "orders": self.orders,
            "seed": self.seed,
            "finish_model": self.finish,
            "grid": [
                {
                    "alpha": g.alpha,
                    "s_min": g.s_min,
                    "accuracy": g.accuracy,
                    "served_tokens_per_question": g.tokens,
                    "samples_per_question": g.samples,
                    "gain": g.gain,
                    "token_ratio": g.ratio,
                    "single_wave": g.single_wave,
                    **g.params,
                }
                for g in self.grid
            ],
        }


def choose(points: Sequence[GridPoint]) -> GridPoint:
    if not points:
        raise InvalidArgumentError("grid", [], "empty calibration grid")

    def key(g: GridPoint) -> tuple[float, float, float, float, float]:
        ratio = g.ratio if g.ratio is not None else 0.0  # beyond the curve: best
        return (-g.gain, ratio, g.tokens, -g.alpha, -g.s_min)

    return min(points, key=key)


def _json(kw: dict[str, Any]) -> dict[str, Any]:
    out = dict(kw)
    pc = out.get("p_correct")
    if pc is not None and not isinstance(pc, dict):
        out["p_correct"] = {"a": pc.a, "b": pc.b}
    return out


def _grid_points(
    policy: str,
    dev: Pool,
    alphas: Sequence[float],
    s_mins: Sequence[float],
    prices: Sequence[float],
    priors: Mapping[str, tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """Every grid point's policy options."""
    if policy == "optscale0":
        return [{"alpha": a, "s_min": s} for a in alphas for s in s_mins]
    if policy == "dsc_prior":
        import numpy as np

        mus = [
            priors[q.question_id][0] for q in dev.questions if priors and q.question_id in priors
        ]
        cuts = sorted({round(float(x), 4) for x in np.quantile(mus, np.linspace(0, 1, 11))})
        return [{"easy_mu": c, "window": w} for c in [*cuts, 1.01] for w in (2, 3, 4)]
    from optscale.bayes import CorrectnessModel

    samples = [s for q in dev.questions for s in q.samples]
    pc = CorrectnessModel.fit([s.score for s in samples], [s.correct for s in samples])
    points: list[dict[str, Any]] = [{"price": p, "p_correct": pc} for p in prices]
    if policy == "hybrid":
        points = [{**p, "select": sel} for p in points for sel in ("best", "vote")]
    return points


def describe(g: GridPoint) -> str:
    return ", ".join(
        [f"alpha={g.alpha}", f"s_min={g.s_min}"]
        if not g.params
        else [f"{k}={v}" for k, v in g.params.items() if k != "p_correct"]
    )


def _verdict(best: GridPoint, min_gain: float) -> tuple[bool, str]:
    if best.single_wave >= 1.0:
        return False, (
            f"{describe(best)} never waits past its first batch: it is a "
            "smaller fixed N under another name, so stopping adds nothing with this scorer"
        )
    if best.gain <= min_gain:
        return False, (
            f"no setting beats the BoN curve: the best gains {100 * best.gain:+.1f} "
            "points at equal tokens; use the best fixed N (or majority vote) with this scorer"
        )
    ratio = "beyond the curve" if best.ratio is None else f"{best.ratio:.2f}x the tokens"
    return True, (
        f"{100 * best.gain:+.1f} points over the best fixed N at equal tokens; {ratio} of the "
        "fixed N of equal accuracy"
    )


def calibrate(
    dev: Pool,
    *,
    policy: str = "optscale0",
    n_max: int | None = None,
    alphas: Sequence[float] = ALPHA_GRID,
    s_mins: Sequence[float] = S_MIN_GRID,
    prices: Sequence[float] = PRICE_GRID,
    min_gain: float = 0.0,
    orders: int = 20,
    seed: int = 0,
    split: str = "dev",
    finish: FinishModel = "length",
    progress: Callable[[int], None] | None = None,
    options: Mapping[str, Any] | None = None,
    priors: Mapping[str, tuple[float, float]] | None = None,
) -> Calibration:
    """Choose the policy's tuned values on ``dev`` by gain over the BoN curve. ``options``:
    fixed policy options (e.g. OptScale's ``initial`` or ``pace``) applied at every grid
    point and stored with the chosen params. ``priors`` ({question id: (mu, sigma)}): needed by
    ``dsc_prior``, whose ``easy_mu`` grid is the dev priors' deciles."""
    if policy not in CALIBRATABLE:
        raise InvalidArgumentError(
            "policy", policy, f"calibrate tunes alpha / s_min of {', '.join(CALIBRATABLE)} only"
        )
    if not dev.questions:
        raise DataError(dev.name, "dev pool is empty")
    if orders < 1:
        raise InvalidArgumentError("orders", orders, "must be >= 1")
    if not alphas or not s_mins or not prices:
        raise InvalidArgumentError(
            "grid", (alphas, s_mins, prices), "needs at least one value each"
        )
    n = n_max or dev.min_samples
    if n < 1 or n > dev.min_samples:
        raise InvalidArgumentError(
            "n_max", n, f"must be in [1, {dev.min_samples}] (smallest per-question count)"
        )
    points: list[GridPoint] = []
    curve: list[tuple[int, float, float]] = []
    if policy == "dsc_prior" and not priors:
        raise InvalidArgumentError("priors", priors, "dsc_prior is tuned on per-question priors")
    for kw in _grid_points(policy, dev, alphas, s_mins, prices, priors):
        a, s = float(kw.get("alpha", DEFAULT_ALPHA)), float(kw.get("s_min", DEFAULT_S_MIN))
        rest = {**(options or {}), **{k: v for k, v in kw.items() if k not in ("alpha", "s_min")}}
        cfg = ReplayConfig(
            policies=(policy,),
            n_max=(n,),
            orders=orders,
            seed=seed,
            alpha=a,
            s_min=s,
            policy_kwargs=rest,
            finish=finish,
            priors=priors,
        )
        r = replay(dev, cfg)
        c, st = r.cell(policy, n), r.standing(policy, n)
        assert st is not None and r.curve is not None
        curve = r.curve.points()
        points.append(
            GridPoint(
                a,
                s,
                c.accuracy,
                c.served_tokens_per_question,
                c.samples_per_question,
                st.gain,
                st.ratio,
                c.single_wave_fraction,
                _json(rest),
            )
        )
        if progress is not None:
            progress(1)
    best = choose(points)
    useful, verdict = _verdict(best, min_gain)
    return Calibration(
        policy=policy,
        n_max=n,
        alpha=best.alpha,
        s_min=best.s_min,
        accuracy=best.accuracy,
        tokens=best.tokens,
        gain=best.gain,
        ratio=best.ratio,
        useful=useful,
        verdict=verdict,
        pool=dev.name,
        pool_sha256=pool_sha256(dev),
        split=split,
        question_ids=sorted(q.question_id for q in dev.questions),
        orders=orders,
        seed=seed,
        finish=finish,
        curve=curve,
        grid=points,
        policy_params=best.params,
        setting=describe(best),
    )


def write_params(cal: Calibration, path: str | Path) -> None:
    """Write the params file; refused when stopping was found useless (see the module doc)."""
    if not cal.useful:
        raise InvalidArgumentError("calibration", cal.verdict, "no params worth writing")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(cal.as_dict(), indent=2) + "\n", encoding="utf-8")
