"""Every policy against the BoN curve on every pool, parameters from the dev half only.

    .venv/bin/python benchmarks/pareto.py [--pools math100,gsm8k,semi-calibrated,semi-noisy]
        [--policies P,...] [--orders 20] [--cal-orders 6] [--plots runs/pareto/] [--jobs 2]
        [--json FILE] [--quick]

Pools: ``math100`` (the shared scored-sample file, 100 MATH questions x 8, Qwen2.5-Math ORM
scores), ``gsm8k`` (the recorded pool: every recorded GSM8K file x 16, confidence scorer),
``semi-calibrated`` and ``semi-noisy`` (MATH-500 x 64 from ``benchmarks/semisynthetic.py``,
built in memory at run time). Each is split dev/test by question-id hash
(:func:`optscale.pools.split_pool`); only the test half is reported.

N_max: 8, 16, 64 as the pool allows (a question never has fewer samples than N_max); a pool
with fewer than three of them gets 4 and 2 added, so every pool has three operating points.

Per N_max, every tunable parameter is chosen on the **dev half** (orders ``--cal-orders``):

* ``optscale0``: alpha / s_min by :func:`optscale.calibrate.calibrate` (largest gain over the
  dev BoN curve at equal served tokens; its verdict is printed);
* ``optscalet``: the same alpha / s_min; prior per question = the pool's own score
  statistics plus noise of the committed predictor's measured error (``semisynthetic.
  noisy_priors``: mean + N(+0.026, 0.051^2), std + N(-0.028, 0.031^2), std >= 0.005). "Own
  statistics" = (prm_mu, prm_sigma) for the semi-synthetic pools (the paper's prior targets,
  which are also the pools' generating location/scale), the mean / std of the question's
  scores over all its samples for the recorded pools;
* every other policy :func:`optscale.calibrate.calibrate` can tune (``CALIBRATABLE`` when this
  runs; e.g. ``bayes`` / ``hybrid``: P(correct | score) fitted on the dev samples, the price
  per token and the selection on its grid): by ``calibrate`` with its own grid, and run on
  the test half exactly as tuned (their default weak prior, as on dev);
* ``asc``: threshold in (0.8, 0.9, 0.95, 0.99); ``esc``: window in (2, 3, 4, 5, 8) (<= N_max);
  ``dsc`` (the batch policy of :mod:`optscale.dsc`, when present; ranked by the priors' mu as
  replay does): window in the same grid; by the same gain over the dev BoN curve (ties: fewer
  tokens);
* ``allocation``, ``allocation-b25``, ``allocation-b50`` (batch budget allocation,
  :mod:`optscale.allocation`, one batch per order index; ``benchmarks/pareto_allocation.py``):
  P(correct | score) fitted on the dev samples; no budget / a batch budget of 0.25x / 0.5x the
  dev half's BoN@N_max tokens per question; price and give-up threshold by the same gain;
* ``bon``, ``sc``, ``wsc``, ``oracle``: nothing to tune. A policy added to
  ``optscale.policies.POLICY_NAMES`` later that calibrate does not know runs with its defaults
  (and OptScale^0's alpha / s_min, and a prior when it wants one) and is marked "untuned".

Test half: ``--orders`` seeded orders per question (``optscale.replay.sample_orders``, the
orders replay uses), episodes by :func:`optscale.episode.run_episode` (the finish model
``length``: a dispatch decodes in parallel, short samples finish first) — the numbers equal
``optscale.replay.replay`` on the same pool (``tests/benchmarks/test_pareto.py`` checks it).
Tokens are **served** tokens (completed + what the samples cut at the stop had decoded); the
paper's count (completed only) is printed beside them.

Against the **BoN curve** (best-of-k for every k <= the pool's largest N_max, same orders,
:class:`optscale.bon_curve.BonCurve`): ``gain`` = accuracy minus the curve's at equal served
tokens; ``ratio`` = served tokens / the curve's fewest tokens at equal accuracy (the best
fixed N of equal accuracy); a point above every BoN(k) is "beyond the curve" and its ratio is
then taken against the most accurate BoN(k) (an upper bound of the ratio at equal accuracy).

Confidence intervals: 95% percentile bootstrap over **test questions** (``--bootstrap``
resamples; orders are averaged within a question first, so the interval covers which
questions were drawn, not only the order noise).

Targets (issue 18): (1) on every pool some policy reaches equal-or-better accuracy than the best
fixed-N BoN with <= 0.5x its tokens at three operating points (low, middle, high accuracy:
here the policy's points at the pool's three N_max, a low / middle / high budget); (2) on the
semi-synthetic pools, at BoN@N_max accuracy (N_max = 64), <= 0.25x BoN@64's tokens. The oracle
is a limit, not a policy, and never counts as meeting a target.

Operating points (``benchmarks/pareto_levels.py``; ``--no-levels`` skips them): three accuracy
levels from the dev half's BoN curve, per policy the dev setting (N_max included) with the
fewest dev tokens that reaches each, reported on the test half against the level's reference
fixed N (and BoN@64 on the semi-synthetic pools) with the same bootstrap intervals; a table
per pool after the pool's own, and one line per pool under "targets".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


from pareto_common import (
    ASC_GRID,
    BATCH_POLICIES,
    ESC_GRID,
    GSM8K_POOL,
    N_FILL,
    N_PREFERRED,
    NOT_A_POLICY,
    POOLS,
    ROOT,
    TARGET_RATIO,
    TARGET_SEMI_FRACTION,
    CellData,
    JobResult,
    Options,
    Tuned,
    label,
    load_pool,
    n_values,
    policies_now,
    priors_for,
)
from pareto_eval import evaluate, run_job
from pareto_levels import LEVEL_POLICIES, QUICK_GRIDS, LevelsResult, run_levels
from pareto_levels_report import report_levels, summary_line
from pareto_report import plot, report_pool
from pareto_standings import (
    Interval,
    Standing,
    bon_arrays,
    curve_of,
    effective,
    standings,
    target1,
    target2,
)
from pareto_tuning import tune

__all__ = [
    "ASC_GRID",
    "BATCH_POLICIES",
    "ESC_GRID",
    "GSM8K_POOL",
    "NOT_A_POLICY",
    "N_FILL",
    "N_PREFERRED",
    "POOLS",
    "ROOT",
    "TARGET_RATIO",
    "TARGET_SEMI_FRACTION",
    "CellData",
    "Interval",
    "JobResult",
    "Options",
    "Standing",
    "Tuned",
    "bon_arrays",
    "curve_of",
    "effective",
    "evaluate",
    "label",
    "load_pool",
    "n_values",
    "plot",
    "policies_now",
    "priors_for",
    "report_pool",
    "run_job",
    "standings",
    "target1",
    "target2",
    "tune",
]


def _jsonable(o: Any) -> Any:
    """Tuned options that are objects (e.g. a CorrectnessModel) as their fields."""
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    return str(o)


def progress(r: JobResult) -> None:
    print(
        f"   [{r.pool} N_max={r.n_max}: tuned and replayed in {r.seconds:.0f} s]", file=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pools", default=",".join(POOLS), help=f"comma list of {', '.join(POOLS)}")
    ap.add_argument(
        "--policies", help="comma list of policies (default: every one; the BoN curve always)"
    )
    ap.add_argument("--orders", type=int, default=20, help="orders per test question")
    ap.add_argument("--cal-orders", type=int, default=6, help="orders per dev question (tuning)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--plots", default="runs/pareto/", help="directory for the PNGs")
    ap.add_argument("--json", help="write every number here")
    ap.add_argument(
        "--no-levels",
        action="store_true",
        help="skip the operating points (benchmarks/pareto_levels.py)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 24 questions per pool, 2 orders, small grids",
    )
    a = ap.parse_args(argv)
    keys = [k.strip() for k in a.pools.split(",") if k.strip()]
    for k in keys:
        if k not in POOLS:
            ap.error(f"unknown pool {k!r} (one of {', '.join(POOLS)})")
    if a.quick:
        o = Options(
            orders=2,
            cal_orders=1,
            seed=a.seed,
            questions=24,
            alphas=(0.8, 0.9),
            s_mins=(0.9, 0.95),
            asc_grid=(0.9, 0.95),
            esc_grid=(2, 4),
            alloc_prices=(1e-5, 1e-4),
            alloc_budget_prices=(0.0,),
            alloc_give_ups=(0.0,),
        )
        boot, jobs = 50, 1
    else:
        o = Options(orders=a.orders, cal_orders=a.cal_orders, seed=a.seed)
        boot, jobs = a.bootstrap, max(1, a.jobs)
    policies = policies_now()
    if a.policies:
        chosen = [p.strip() for p in a.policies.split(",") if p.strip()]
        for p in chosen:
            if p not in policies:
                ap.error(f"unknown policy {p!r} (one of {', '.join(policies)})")
        policies = chosen
    t0 = time.perf_counter()
    print(
        f"policies: {', '.join(policies)}; finish model "
        "'length' (served tokens); CIs: 95% bootstrap over test questions "
        f"({boot} resamples)"
    )
    pools = {k: load_pool(k, o) for k in keys}  # built before the workers fork
    jobs_list = [(k, n) for k in keys for n in n_values(pools[k])]
    jobs_list.sort(key=lambda kn: -kn[1] * len(pools[kn[0]].questions))
    results: dict[str, list[JobResult]] = {k: [] for k in keys}
    grids = QUICK_GRIDS if a.quick else None
    level_keys = [] if a.no_levels or not set(LEVEL_POLICIES) & set(policies) else list(keys)
    for k in [k for k in level_keys if max(n_values(pools[k])) < 8]:
        print(f"   [{k}: fewer than 8 samples per question, no operating points]", file=sys.stderr)
        level_keys.remove(k)
    levels: dict[str, LevelsResult] = {}
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            lfuts = [ex.submit(run_levels, k, policies, o, grids) for k in level_keys]
            futs = [ex.submit(run_job, k, n, policies, o) for k, n in jobs_list]
            for f in futs:
                r = f.result()
                results[r.pool].append(r)
                progress(r)
            for lf in lfuts:
                lr = lf.result()
                levels[lr.pool] = lr
    else:
        for k, n in jobs_list:
            r = run_job(k, n, policies, o)
            results[r.pool].append(r)
            progress(r)
        for k in level_keys:
            levels[k] = run_levels(k, policies, o, grids)
    plots = Path(a.plots)
    doc = []
    for k in keys:
        d = report_pool(k, pools[k], results[k], o, boot, plots)
        if k in levels:
            d["operating_points"] = report_levels(pools[k], levels[k], o, boot)
        doc.append(d)
    print("\n== targets (issue 18)")
    for d in doc:
        t1 = [p for p, ok in d["target1"].items() if ok]
        line = f"   {d['pool']:28s} target 1: " + (
            f"met by {', '.join(label(p) for p in t1)}" if t1 else "missed by every policy"
        )
        if d["target2"]:
            t2 = [p for p, ok in d["target2"].items() if ok]
            line += "; target 2: " + (
                f"met by {', '.join(label(p) for p in t2)}" if t2 else "missed by every policy"
            )
        print(line)
        if "operating_points" in d:
            print(f"   {'':28s} operating points: {summary_line(d['operating_points'])}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n", "utf-8")


if __name__ == "__main__":
    main()
