"""Operating-point tuning for ``benchmarks/pareto.py``: three accuracy levels defined on the DEV
half, and per policy the dev-chosen parameters with the fewest dev tokens that reach each level.

    .venv/bin/python benchmarks/pareto_levels.py [--pools semi-calibrated,semi-noisy,...]
        [--policies asc,esc,...] [--orders 20] [--cal-orders 4] [--bootstrap 1000] [--quick]
        [--json FILE]

(``benchmarks/pareto.py`` runs the same and prints the same table after each pool's.)

**Levels (dev only).** On the dev half's BoN curve (``--cal-orders`` orders per question) the
best fixed N within BoN@k's tokens (the running maximum of BoN(1..k)) at three k —
(2, 4, 8), (4, 8, 16) or (4, 16, 64) for a pool whose largest N_max K is 8, 16 or 64 — ``low``,
``middle``, ``high``; on the semi-synthetic pools a fourth, ``BoN@64``: BoN@64's own dev
accuracy (issue 18's second target).

**Choice (dev only).** Per policy, a grid of settings — N_max itself (fixed N for ``sc`` /
``wsc``; the pool's three N_max for the others) crossed with the policy's stopping parameters
(``asc``: threshold up to 0.999; ``esc``: window up to 16; ``optscale0`` / ``optscalet``: alpha
x s_min; ``hybrid``: price 0 (no Bayesian stop), agreement threshold up to 0.9999, the bound's
alpha / s_min or no bound, selection best score or weighted vote; ``bayes``: the price, with
P(correct | score) fitted on the dev samples) — is replayed on the dev
half; at each level the setting with the fewest dev served tokens whose dev accuracy reaches the
level is chosen (ties: the more accurate). When none reaches it, the most accurate one is taken
and marked "not reached on dev".

**Test.** Each chosen setting is replayed on the test half (``--orders`` orders) and put against
the test BoN curve by :mod:`pareto_levels_report` (ratio at equal accuracy, gain at equal tokens,
and the level's reference fixed N, with 95% bootstrap intervals over test questions).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pareto_common import CellData, Options, Tuned, load_pool, n_values, priors_for
from pareto_eval import evaluate
from pareto_standings import bon_arrays

from optscale.bayes import CorrectnessModel
from optscale.calibrate import PRICE_GRID
from optscale.policies import POLICY_NAMES
from optscale.pools import Pool, split_pool

LEVEL_NAMES: tuple[str, ...] = ("low", "middle", "high")
# the per-question policies operating-point tuning covers (batch policies, dsc_prior and
# mr_thinking keep pareto's own rows)
LEVEL_POLICIES: tuple[str, ...] = (
    "sc", "wsc", "asc", "esc", "optscale0", "optscalet", "hybrid", "bayes",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LevelGrids:
    asc: tuple[float, ...] = (0.8, 0.9, 0.95, 0.99, 0.995, 0.999)
    esc: tuple[int, ...] = (2, 3, 4, 5, 8, 16)
    alphas: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.99)
    s_mins: tuple[float, ...] = (0.7, 0.8, 0.9, 0.95, 0.98)
    hybrid_thresholds: tuple[float, ...] = (0.99, 0.999, 0.9999)
    # (alpha, s_min) of the hybrid's bound; (0.5, 0.999) asks N* >= N_max: no bound stop
    hybrid_bounds: tuple[tuple[float, float], ...] = ((0.5, 0.999), (0.9, 0.95), (0.9, 0.98))
    hybrid_selects: tuple[str, ...] = ("best", "vote")
    bayes_prices: tuple[float, ...] = PRICE_GRID


QUICK_GRIDS = LevelGrids(
    asc=(0.9, 0.99),
    esc=(2, 4),
    alphas=(0.9,),
    s_mins=(0.9, 0.95),
    hybrid_thresholds=(0.99,),
    hybrid_bounds=((0.9, 0.95),),
    hybrid_selects=("best",),
    bayes_prices=(1e-5, 1e-4),
)


@dataclass(slots=True)
class Choice:
    """One policy's dev-chosen setting at one level, and its test cell."""

    level: str
    policy: str
    n_max: int
    kwargs: dict[str, Any]
    dev_acc: float
    dev_served: float
    reached: bool  # the dev accuracy reaches the level
    cell: CellData | None = None


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    k: int
    dev_acc: float  # the accuracy a setting must reach on dev
    exact: bool  # BoN@k itself (the target-2 level), not the best fixed N within its tokens


@dataclass(slots=True)
class LevelsResult:
    pool: str
    k_max: int
    levels: list[Level]
    candidates: dict[str, int]  # settings replayed on dev, per policy
    choices: list[Choice]
    seconds: float


def level_ks(k_max: int) -> tuple[int, int, int]:
    """The k of the low / middle / high level: (2, 4, 8) for K = 8, (4, 8, 16) for K = 16,
    (4, 16, 64) for K = 64 (low: 4, or 2 when K < 16; middle: K/4 when K >= 32, else K/2)."""
    if k_max < 8:
        raise ValueError(f"operating points need a pool with at least 8 samples, got {k_max}")
    return (4 if k_max >= 16 else 2), (k_max // 4 if k_max >= 32 else k_max // 2), k_max


def dev_levels(dev_acc_k: np.ndarray, ks: Sequence[int]) -> tuple[float, ...]:
    """The best fixed N within BoN@k's tokens (running max of the dev BoN curve) at each k."""
    env = np.maximum.accumulate(dev_acc_k)
    return tuple(float(env[k - 1]) for k in ks)


def candidates(
    policy: str,
    k_max: int,
    n_maxes: Sequence[int],
    g: LevelGrids,
    p_correct: CorrectnessModel | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Every (N_max, options) setting of ``policy`` the dev half tries (``p_correct``: the
    Bayesian stop's P(correct | score), fitted on the dev samples)."""
    if policy in ("sc", "wsc", "bon"):
        return [(k, {}) for k in (1, 2, 4, 8, 16, 32, 64) if k <= k_max]
    if policy == "asc":
        return [(n, {"threshold": t}) for n in n_maxes for t in g.asc]
    if policy == "esc":
        return [(n, {"window": w}) for n in n_maxes for w in g.esc if w <= n]
    if policy in ("optscale0", "optscalet"):
        return [(n, {"alpha": a, "s_min": s}) for n in n_maxes for a in g.alphas for s in g.s_mins]
    if policy == "hybrid":
        return [
            (n, {"price": 0.0, "threshold": t, "alpha": a, "s_min": s, "select": sel})
            for n in n_maxes
            for t in g.hybrid_thresholds
            for a, s in g.hybrid_bounds
            for sel in g.hybrid_selects
        ]
    if policy == "bayes":
        if p_correct is None:
            raise ValueError("bayes needs P(correct | score) fitted on dev")
        return [(n, {"price": p, "p_correct": p_correct}) for n in n_maxes for p in g.bayes_prices]
    raise ValueError(f"no operating-point grid for policy {policy!r}")


def choose(
    points: Sequence[tuple[int, dict[str, Any], float, float]], level: float
) -> tuple[int, dict[str, Any], float, float, bool]:
    """Of the dev points (N_max, options, accuracy, served tokens): the fewest tokens whose
    accuracy reaches ``level`` (ties: more accurate); none reaches it: the most accurate
    (ties: fewer tokens), marked not reached."""
    if not points:
        raise ValueError("no dev points to choose from")
    ok = [p for p in points if p[2] >= level - 1e-12]
    if ok:
        n, kw, acc, served = min(ok, key=lambda p: (p[3], -p[2]))
        return n, kw, acc, served, True
    n, kw, acc, served = max(points, key=lambda p: (p[2], -p[3]))
    return n, kw, acc, served, False


def _cell(pool: Pool, n: int, policy: str, kw: dict[str, Any], pri: Any, o: Options) -> CellData:
    cells, notes = evaluate(pool, n, [Tuned(policy, dict(kw), "")], pri, o)
    if notes:
        raise RuntimeError(f"{policy} at N_max {n}: {'; '.join(notes)}")
    return cells[0]


def run_levels(
    key: str,
    policies: Sequence[str],
    o: Options,
    grids: LevelGrids | None = None,
) -> LevelsResult:
    """Levels on dev, the dev choice per (level, policy), the chosen settings on test."""
    t0 = time.perf_counter()
    g = grids or LevelGrids()
    pool = load_pool(key, o)
    dev, test = split_pool(pool)
    ns = n_values(pool)
    k_max = max(ns)
    ks = level_ks(k_max)
    dev_o = replace(o, orders=o.cal_orders)
    dev_acc, _ = bon_arrays(dev, k_max, dev_o)
    curve = dev_acc.mean(0)
    levels = [
        Level(name, k, acc, False)
        for name, k, acc in zip(LEVEL_NAMES, ks, dev_levels(curve, ks), strict=True)
    ]
    if key.startswith("semi-"):  # target 2: BoN@N_max's own accuracy
        levels.append(Level(f"BoN@{k_max}", k_max, float(curve[k_max - 1]), True))
    pri = priors_for(key, pool, o.seed)
    chosen_policies = [p for p in LEVEL_POLICIES if p in policies and p in POLICY_NAMES]
    choices: list[Choice] = []
    counts: dict[str, int] = {}
    pc = None
    if "bayes" in chosen_policies:
        samples = [s for q in dev.questions for s in q.samples]
        pc = CorrectnessModel.fit([s.score for s in samples], [s.correct for s in samples])
    for p in chosen_policies:
        pts = []
        for n, kw in candidates(p, k_max, ns, g, pc):
            c = _cell(dev, n, p, kw, pri, dev_o)
            pts.append((n, kw, float(c.acc.mean()), float(c.served.mean())))
        counts[p] = len(pts)
        for lv in levels:
            n, kw, acc, served, reached = choose(pts, lv.dev_acc)
            choices.append(Choice(lv.name, p, n, kw, acc, served, reached))
    done: dict[tuple[str, int, str], CellData] = {}
    for ch in choices:
        ck = (ch.policy, ch.n_max, repr(sorted(ch.kwargs.items())))
        if ck not in done:
            done[ck] = _cell(test, ch.n_max, ch.policy, ch.kwargs, pri, o)
        ch.cell = done[ck]
    return LevelsResult(key, k_max, levels, counts, choices, time.perf_counter() - t0)


def setting(ch: Choice) -> str:
    """The chosen setting in a few characters."""
    kw = ch.kwargs
    if ch.policy in ("sc", "wsc", "bon"):
        return f"N={ch.n_max}"
    if ch.policy == "asc":
        return f"N_max={ch.n_max} thr={kw['threshold']}"
    if ch.policy == "esc":
        return f"N_max={ch.n_max} w={kw['window']}"
    if ch.policy in ("optscale0", "optscalet"):
        return f"N_max={ch.n_max} a={kw['alpha']} s={kw['s_min']}"
    if ch.policy == "hybrid":
        bound = "no bound" if kw["s_min"] >= 0.999 else f"a={kw['alpha']} s={kw['s_min']}"
        return f"N_max={ch.n_max} agr={kw['threshold']} {bound} {kw['select']}"
    if ch.policy == "bayes":
        return f"N_max={ch.n_max} price={kw['price']:g}"
    return f"N_max={ch.n_max} {kw}"


def main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import json

    from pareto_common import POOLS
    from pareto_levels_report import report_levels

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pools", default=",".join(POOLS), help=f"comma list of {', '.join(POOLS)}")
    ap.add_argument("--policies", default=",".join(LEVEL_POLICIES), help="comma list")
    ap.add_argument("--orders", type=int, default=20, help="orders per test question")
    ap.add_argument("--cal-orders", type=int, default=4, help="orders per dev question")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="24 questions, 2 orders, small grids")
    ap.add_argument("--json", help="write every number here")
    a = ap.parse_args(argv)
    keys = [k.strip() for k in a.pools.split(",") if k.strip()]
    for k in keys:
        if k not in POOLS:
            ap.error(f"unknown pool {k!r} (one of {', '.join(POOLS)})")
    policies = [p.strip() for p in a.policies.split(",") if p.strip()]
    for p in policies:
        if p not in LEVEL_POLICIES:
            ap.error(f"unknown policy {p!r} (one of {', '.join(LEVEL_POLICIES)})")
    if a.quick:
        o, g, boot = Options(orders=2, cal_orders=1, seed=a.seed, questions=24), QUICK_GRIDS, 50
    else:
        o, g, boot = (
            Options(orders=a.orders, cal_orders=a.cal_orders, seed=a.seed),
            None,
            a.bootstrap,
        )
    docs = []
    for k in keys:
        r = run_levels(k, policies, o, g)
        docs.append(report_levels(load_pool(k, o), r, o, boot))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(docs, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
