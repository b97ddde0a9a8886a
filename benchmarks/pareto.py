"""Every policy against the BoN curve on every pool, parameters from the dev half only.

    .venv/bin/python benchmarks/pareto.py [--pools math100,gsm8k,semi-calibrated,semi-noisy]
        [--orders 20] [--cal-orders 6] [--plots runs/pareto/] [--jobs 2] [--json FILE] [--quick]

Pools: ``math100`` (the shared scored-sample file, 100 MATH questions x 8, Qwen2.5-Math ORM
scores), ``gsm8k`` (the recorded pool, 50 GSM8K questions x 16, confidence scorer),
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
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import semisynthetic

from optscale.bon_curve import BonCurve, bon_prefixes
from optscale.calibrate import ALPHA_GRID, CALIBRATABLE, S_MIN_GRID, calibrate
from optscale.datasets import datasets_dir
from optscale.episode import run_episode
from optscale.errors import InvalidArgumentError
from optscale.policies import POLICY_NAMES, make_policy
from optscale.pools import Pool, read_pool, split_pool
from optscale.replay import POLICY_LABELS, ReplayConfig, bon_answer, replay, sample_orders
from optscale.stats import GaussianPrior

ROOT = Path(__file__).resolve().parent
GSM8K_POOL = ROOT / "data" / "gsm8k50-qwen1.5b-confidence.jsonl.gz"
POOLS: tuple[str, ...] = ("math100", "gsm8k", "semi-calibrated", "semi-noisy")
N_PREFERRED: tuple[int, ...] = (8, 16, 64)
N_FILL: tuple[int, ...] = (4, 2, 1)
ASC_GRID: tuple[float, ...] = (0.8, 0.9, 0.95, 0.99)
ESC_GRID: tuple[int, ...] = (2, 3, 4, 5, 8)
TARGET_RATIO, TARGET_SEMI_FRACTION = 0.5, 0.25
NOT_A_POLICY = frozenset({"oracle"})
BATCH_POLICIES = ("dsc",)  # decide over the whole batch (optscale.dsc), not through the loop


@dataclass(frozen=True, slots=True)
class Options:
    orders: int = 20
    cal_orders: int = 6
    seed: int = 0
    questions: int | None = None  # the first questions of every pool (smoke tests)
    alphas: tuple[float, ...] = ALPHA_GRID
    s_mins: tuple[float, ...] = S_MIN_GRID
    asc_grid: tuple[float, ...] = ASC_GRID
    esc_grid: tuple[int, ...] = ESC_GRID


@dataclass(slots=True)
class Tuned:
    policy: str
    kwargs: dict[str, Any]
    note: str


@dataclass(slots=True)
class CellData:
    """One policy at one N_max on the test half: per-question means over the orders."""

    policy: str
    n_max: int
    params: str
    acc: np.ndarray
    served: np.ndarray
    paper: np.ndarray
    samples: np.ndarray
    single_wave: float


@dataclass(slots=True)
class JobResult:
    pool: str
    n_max: int
    tuned: list[Tuned]
    cells: list[CellData]
    notes: list[str]
    seconds: float


@dataclass(slots=True)
class Interval:
    point: float
    lo: float
    hi: float

    def fmt(self, scale: float = 1.0, digits: int = 1, sign: bool = False) -> str:
        f = f"{{:{'+' if sign else ''}.{digits}f}}"
        return (
            f"{f.format(scale * self.point)} "
            f"[{f.format(scale * self.lo)}, {f.format(scale * self.hi)}]"
        )


@dataclass(slots=True)
class Standing:
    cell: CellData
    acc: Interval
    served: float
    gain: Interval
    ratio: Interval  # effective ratio (against the most accurate BoN(k) when beyond the curve)
    beyond: bool
    curve_k: float | None
    vs_top: dict[str, Interval] = field(default_factory=dict)  # semi: vs BoN@N_max


# ---------------------------------------------------------------------------------------------
# pools and priors

_CACHE: dict[tuple[str, int | None, int], Pool] = {}


def load_pool(key: str, opts: Options) -> Pool:
    ck = (key, opts.questions, opts.seed)
    if ck not in _CACHE:
        if key == "math100":
            pool = read_pool(str(datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl"))
        elif key == "gsm8k":
            pool = read_pool(str(GSM8K_POOL))
        elif key.startswith("semi-"):
            pool = semisynthetic.build_pool(key[len("semi-") :], seed=opts.seed)
        else:
            raise SystemExit(f"unknown pool {key!r} (one of {', '.join(POOLS)})")
        if opts.questions is not None:
            pool = Pool(pool.name, pool.questions[: opts.questions])
        _CACHE[ck] = pool
    return _CACHE[ck]


def priors_for(key: str, pool: Pool, seed: int) -> dict[str, tuple[float, float]]:
    """The question's own score statistics plus the predictor's measured error."""
    if key.startswith("semi-"):
        rows = semisynthetic.load_rows()
        ids = {q.question_id for q in pool.questions}
        return semisynthetic.noisy_priors([r for r in rows if r.question_id in ids], seed=seed)
    own = [
        semisynthetic.Row(
            q.question_id,
            q.question or "",
            q.reference or "",
            3,
            float(np.mean([s.score for s in q.samples])),
            max(float(np.std([s.score for s in q.samples])), semisynthetic.SIGMA_FLOOR),
        )
        for q in pool.questions
    ]
    return semisynthetic.noisy_priors(own, seed=seed)


def n_values(pool: Pool) -> list[int]:
    m = pool.min_samples
    ns = [n for n in N_PREFERRED if n <= m]
    for n in N_FILL:
        if len(ns) >= 3:
            break
        if n <= m and n not in ns:
            ns.append(n)
    return sorted(ns)


def policies_now() -> list[str]:
    """``optscale.policies.POLICY_NAMES`` as it is when this runs, and the batch policies replay
    runs beside them (``dsc``) when they exist."""
    out = list(POLICY_NAMES)
    for p in BATCH_POLICIES:
        if p not in out and importlib.util.find_spec(f"optscale.{p}") is not None:
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# dev-half tuning


def _dev_choice(
    dev: Pool,
    policy: str,
    n: int,
    name: str,
    values: Sequence[Any],
    base: dict[str, Any],
    o: Options,
    priors: dict[str, tuple[float, float]] | None = None,
) -> Tuned:
    """The value of ``name`` with the largest gain over the dev BoN curve (ties: fewer tokens)."""
    best: tuple[float, float, Any] | None = None
    for v in values:
        cfg = ReplayConfig(
            policies=(policy,),
            n_max=(n,),
            orders=o.cal_orders,
            seed=o.seed,
            alpha=base["alpha"],
            s_min=base["s_min"],
            policy_kwargs={name: v},
            priors=priors,
        )
        r = replay(dev, cfg)
        st = r.standing(policy, n)
        assert st is not None
        key = (st.gain, -st.tokens, v)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    return Tuned(
        policy, {**base, name: best[2]}, f"{name}={best[2]} (dev gain {100 * best[0]:+.1f} pts)"
    )


def _calibrated(cal: Any) -> tuple[dict[str, Any], str]:
    """make_policy options and a description of a :class:`optscale.calibrate.Calibration`."""
    kw: dict[str, Any] = {"alpha": cal.alpha, "s_min": cal.s_min}
    for k, v in (getattr(cal, "policy_params", None) or {}).items():
        if k == "p_correct" and isinstance(v, dict):
            from optscale.bayes import CorrectnessModel

            v = CorrectnessModel(float(v["a"]), float(v["b"]))
        kw[k] = v
    setting = getattr(cal, "setting", "") or f"alpha={cal.alpha}, s_min={cal.s_min}"
    if "p_correct" in kw:
        pc = kw["p_correct"]
        setting += f", P(correct|s) = sigmoid({pc.a:.2f} + {pc.b:.2f} s)"
    return kw, setting


def tune(
    dev: Pool,
    n: int,
    policies: Sequence[str],
    o: Options,
    priors: dict[str, tuple[float, float]] | None = None,
) -> tuple[list[Tuned], list[str]]:
    notes: list[str] = []
    cal = calibrate(
        dev, n_max=n, orders=o.cal_orders, seed=o.seed, alphas=o.alphas, s_mins=o.s_mins
    )
    base: dict[str, Any] = {"alpha": cal.alpha, "s_min": cal.s_min}
    notes.append(f"OptScale^0 dev calibration: {cal.verdict}")
    out: list[Tuned] = []
    for p in policies:
        if p == "optscale0":
            out.append(Tuned(p, dict(base), f"alpha={cal.alpha} s_min={cal.s_min}"))
        elif p == "optscalet":
            out.append(Tuned(p, dict(base), f"alpha={cal.alpha} s_min={cal.s_min} (OptScale^0's)"))
        elif p in CALIBRATABLE:
            c = calibrate(dev, policy=p, n_max=n, orders=o.cal_orders, seed=o.seed)
            kw, setting = _calibrated(c)
            notes.append(f"{label(p)} dev calibration: {c.verdict}")
            out.append(Tuned(p, kw, setting + " (calibrate)"))
        elif p == "asc":
            out.append(_dev_choice(dev, p, n, "threshold", o.asc_grid, base, o))
        elif p == "esc":
            windows = [w for w in o.esc_grid if w <= n] or [n]
            out.append(_dev_choice(dev, p, n, "window", windows, base, o))
        elif p == "dsc":
            windows = [w for w in o.esc_grid if w <= n] or [n]
            out.append(_dev_choice(dev, p, n, "dsc_window", windows, base, o, priors))
        elif p in ("bon", "sc", "wsc", "oracle"):
            out.append(Tuned(p, {}, ""))
        else:
            out.append(Tuned(p, dict(base), "untuned (defaults, OptScale^0's alpha/s_min)"))
    return out, notes


# ---------------------------------------------------------------------------------------------
# the test half


def _build(policy: str, n: int, kwargs: dict[str, Any], prior: GaussianPrior | None) -> Any:
    kw = dict(kwargs)
    if prior is not None:
        kw["prior"] = prior
    return make_policy(policy, n_max=n, **kw)


def _needs_prior(policy: str, n: int, kwargs: dict[str, Any]) -> bool:
    if policy == "oracle":
        return False
    try:
        make_policy(policy, n_max=n, **kwargs)
    except InvalidArgumentError as exc:
        if "prior" in str(exc):
            return True
        raise
    return False


def evaluate(
    test: Pool,
    n: int,
    tuned: Sequence[Tuned],
    priors: dict[str, tuple[float, float]],
    o: Options,
) -> tuple[list[CellData], list[str]]:
    notes: list[str] = []
    nq = len(test.questions)
    per_question = [t for t in tuned if t.policy not in BATCH_POLICIES]
    per_prior = {t.policy: _needs_prior(t.policy, n, t.kwargs) for t in per_question}
    shared = {
        t.policy: _build(t.policy, n, t.kwargs, None)
        for t in per_question
        if t.policy != "oracle" and not per_prior[t.policy]
    }
    arrays = {t.policy: np.zeros((5, nq)) for t in tuned}

    def put(policy: str, qi: int, eps: Sequence[Any]) -> None:
        a = arrays[policy]
        a[0, qi] = np.mean([e.correct for e in eps])
        a[1, qi] = np.mean([e.served_tokens for e in eps])
        a[2, qi] = np.mean([e.tokens for e in eps])
        a[3, qi] = np.mean([e.samples for e in eps])
        a[4, qi] = np.mean([e.waves <= 1 for e in eps])

    orders = [sample_orders(q, o.orders, o.seed) for q in test.questions]
    missing = 0
    for qi, q in enumerate(test.questions):
        for t in per_question:
            if t.policy == "oracle":
                eps = [
                    run_episode(
                        make_policy("oracle", n_max=n, target_answer=bon_answer(od, n).answer), od
                    )
                    for od in orders[qi]
                ]
            elif per_prior[t.policy]:
                ms = priors.get(q.question_id)
                if ms is None:
                    missing += 1
                    continue
                pol = _build(t.policy, n, t.kwargs, GaussianPrior(ms[0], ms[1]))
                eps = [run_episode(pol, od) for od in orders[qi]]
            else:
                eps = [run_episode(shared[t.policy], od) for od in orders[qi]]
            put(t.policy, qi, eps)
    for t in tuned:
        if t.policy == "dsc":  # decides over the whole batch: one batch per order index
            from optscale.dsc import dsc_batch

            ids = [q.question_id for q in test.questions]
            ease = {i: priors[i][0] for i in ids} if all(i in priors for i in ids) else None
            got: list[list[Any]] = [[] for _ in ids]
            for oi in range(o.orders):
                batch = {q.question_id: orders[qi][oi] for qi, q in enumerate(test.questions)}
                eps_by_id = dsc_batch(
                    test.questions,
                    batch,
                    n_max=n,
                    window=int(t.kwargs.get("dsc_window", 4)),
                    difficulty=ease,
                )
                for qi, i in enumerate(ids):
                    got[qi].append(eps_by_id[i])
            for qi in range(nq):
                put(t.policy, qi, got[qi])
    if missing:
        notes.append(f"{missing} (question, policy) pairs had no prior and were skipped")
    cells = []
    for t in tuned:
        a = arrays[t.policy]
        cells.append(CellData(t.policy, n, t.note, a[0], a[1], a[2], a[3], float(a[4].mean())))
    return cells, notes


def run_job(key: str, n: int, policies: Sequence[str], o: Options) -> JobResult:
    t0 = time.perf_counter()
    pool = load_pool(key, o)
    dev, test = split_pool(pool)
    priors = priors_for(key, pool, o.seed)
    tuned, notes = tune(dev, n, policies, o, priors)
    cells, more = evaluate(test, n, tuned, priors, o)
    return JobResult(key, n, tuned, cells, notes + more, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# the BoN curve and standings with bootstrap intervals


def bon_arrays(test: Pool, k_max: int, o: Options) -> tuple[np.ndarray, np.ndarray]:
    """Per question (rows) and k = 1..k_max (columns): BoN(k) accuracy and tokens, averaged
    over the same orders the episodes use."""
    acc = np.zeros((len(test.questions), k_max))
    tok = np.zeros((len(test.questions), k_max))
    for qi, q in enumerate(test.questions):
        for od in sample_orders(q, o.orders, o.seed):
            pre = bon_prefixes(od, k_max)
            acc[qi] += [c for c, _ in pre]
            tok[qi] += [t for _, t in pre]
    return acc / o.orders, tok / o.orders


def curve_of(acc_k: np.ndarray, tok_k: np.ndarray) -> BonCurve:
    c = BonCurve(len(acc_k))
    c.episodes = 1
    c.correct = [float(x) for x in acc_k]
    c.tokens = [float(x) for x in tok_k]
    return c


def effective(
    curve: BonCurve, tokens: float, acc: float
) -> tuple[float, float, bool, float | None]:
    """(gain, ratio, beyond the curve, equal k); beyond: ratio vs the most accurate BoN(k)."""
    st = curve.standing(tokens, acc)
    if st.ratio is not None:
        return st.gain, st.ratio, False, st.curve_k
    pts = curve.points()
    best = max(pts, key=lambda p: (p[2], -p[1]))
    return st.gain, tokens / best[1], True, None


def _ci(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def standings(
    cells: Sequence[CellData],
    bon_acc: np.ndarray,
    bon_tok: np.ndarray,
    *,
    top_n: int | None,
    boot: int,
    seed: int,
) -> list[Standing]:
    nq = bon_acc.shape[0]
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(rng.integers(0, nq, nq), minlength=nq) for _ in range(boot)]) / nq
    ca, ct = w @ bon_acc, w @ bon_tok  # (boot, K)
    curves = [curve_of(ca[b], ct[b]) for b in range(boot)]
    point_curve = curve_of(bon_acc.mean(0), bon_tok.mean(0))
    out: list[Standing] = []
    for c in cells:
        acc, served = float(c.acc.mean()), float(c.served.mean())
        gain, ratio, beyond, k = effective(point_curve, served, acc)
        ba, bs = w @ c.acc, w @ c.served
        g, r = np.zeros(boot), np.zeros(boot)
        for b in range(boot):
            g[b], r[b], _, _ = effective(curves[b], float(bs[b]), float(ba[b]))
        st = Standing(
            c,
            Interval(acc, *_ci(ba)),
            served,
            Interval(gain, *_ci(g)),
            Interval(ratio, *_ci(r)),
            beyond,
            k,
        )
        if top_n is not None and c.n_max == top_n:
            d = c.acc - bon_acc[:, top_n - 1]
            frac = bs / ct[:, top_n - 1]
            st.vs_top = {
                "acc_diff": Interval(float(d.mean()), *_ci(w @ d)),
                "token_fraction": Interval(
                    served / float(bon_tok[:, top_n - 1].mean()), *_ci(frac)
                ),
            }
        out.append(st)
    return out


# ---------------------------------------------------------------------------------------------
# targets


def target1(sts: Sequence[Standing]) -> dict[str, tuple[bool, str]]:
    """Per policy: its three operating points (N_max low, middle, high) all at ratio <= 0.5
    (point estimates; whether the CI stays below 0.5 is printed too)."""
    out: dict[str, tuple[bool, str]] = {}
    by: dict[str, list[Standing]] = {}
    for s in sts:
        by.setdefault(s.cell.policy, []).append(s)
    for p, ss in by.items():
        ss = sorted(ss, key=lambda s: s.cell.n_max)
        parts, ok = [], len(ss) >= 3
        for s in ss:
            met = s.ratio.point <= TARGET_RATIO
            robust = s.ratio.hi <= TARGET_RATIO
            ok = ok and met
            parts.append(
                f"N={s.cell.n_max} ({100 * s.acc.point:.1f}%) {s.ratio.point:.2f}x "
                f"[{s.ratio.lo:.2f}, {s.ratio.hi:.2f}] "
                + ("met" + ("" if robust else " (CI crosses 0.5)") if met else "missed")
            )
        if p in NOT_A_POLICY:
            ok = False
            parts.append("(a limit, not a policy)")
        out[p] = (ok, "; ".join(parts))
    return out


def target2(sts: Sequence[Standing], top_n: int) -> dict[str, tuple[bool, str]]:
    out: dict[str, tuple[bool, str]] = {}
    for s in sts:
        if s.cell.n_max != top_n or not s.vs_top:
            continue
        d, f = s.vs_top["acc_diff"], s.vs_top["token_fraction"]
        tokens_ok = f.point <= TARGET_SEMI_FRACTION
        if d.point >= 0 and tokens_ok:
            verdict, ok = "met", True
        elif tokens_ok and d.hi >= 0:
            verdict, ok = "tokens met, accuracy below BoN@N_max but within noise", False
        else:
            verdict, ok = "missed", False
        if s.cell.policy in NOT_A_POLICY:
            ok, verdict = False, verdict + " (a limit, not a policy)"
        out[s.cell.policy] = (
            ok,
            f"acc vs BoN@{top_n} {d.fmt(100, 1, True)} pts, tokens {f.fmt(1, 3)}x: {verdict}",
        )
    return out


# ---------------------------------------------------------------------------------------------
# output


def label(p: str) -> str:
    return POLICY_LABELS.get(p, p)


def plot(
    path: Path,
    title: str,
    bon_acc: np.ndarray,
    bon_tok: np.ndarray,
    sts: Sequence[Standing],
    top_n: int | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc_k, tok_k = 100 * bon_acc.mean(0), bon_tok.mean(0)
    fig, ax = plt.subplots(figsize=(11, 5.5))
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # 20 distinct colours, dark ones first
    ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in order])
    ax.plot(tok_k, acc_k, "-", color="black", lw=1.5, label=f"BoN(k), k = 1..{len(acc_k)}")
    ax.plot(tok_k, acc_k, ".", color="black")
    for k in (1, 2, 4, 8, 16, 32, 64):
        if k <= len(acc_k):
            ax.annotate(
                f"k={k}",
                (tok_k[k - 1], acc_k[k - 1]),
                fontsize=7,
                xytext=(2, -9),
                textcoords="offset points",
            )
    env = np.maximum.accumulate(acc_k)  # the best fixed N at each budget
    ax.plot(tok_k, env, "-", color="black", lw=0.6, alpha=0.5)
    ax.plot(
        TARGET_RATIO * tok_k,
        env,
        "--",
        color="grey",
        lw=1,
        label=f"target: {TARGET_RATIO}x the tokens of the best fixed N (running max of BoN(k))",
    )
    if top_n is not None:
        ax.plot(
            [TARGET_SEMI_FRACTION * tok_k[top_n - 1]],
            [acc_k[top_n - 1]],
            "*",
            ms=14,
            color="gold",
            mec="black",
            label=f"target: BoN@{top_n} acc at {TARGET_SEMI_FRACTION}x its tokens",
        )
    by: dict[str, list[Standing]] = {}
    for s in sts:
        by.setdefault(s.cell.policy, []).append(s)
    for p, ss in by.items():
        ss = sorted(ss, key=lambda s: s.served)
        x = [s.served for s in ss]
        y = [100 * s.acc.point for s in ss]
        err = [
            [100 * (s.acc.point - s.acc.lo) for s in ss],
            [100 * (s.acc.hi - s.acc.point) for s in ss],
        ]
        ax.errorbar(
            x,
            y,
            yerr=err,
            marker="o",
            ms=4,
            lw=1,
            capsize=2,
            alpha=0.85,
            label=label(p)
            + " (N_max "
            + ",".join(str(n) for n in sorted(s.cell.n_max for s in ss))
            + ")",
        )
    ax.set_xscale("log")
    ax.set_xlabel("served tokens per question (completed + cut at the stop)")
    ax.set_ylabel("accuracy % (test half; bars: 95% bootstrap CI over questions)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_pool(
    key: str,
    pool: Pool,
    results: Sequence[JobResult],
    o: Options,
    boot: int,
    plots: Path,
) -> dict[str, Any]:
    dev, test = split_pool(pool)
    ns = sorted(r.n_max for r in results)
    k_max = max(ns)
    bon_acc, bon_tok = bon_arrays(test, k_max, o)
    semi = key.startswith("semi-")
    top_n = k_max if semi else None
    cells = [c for r in sorted(results, key=lambda r: r.n_max) for c in r.cells]
    sts = standings(cells, bon_acc, bon_tok, top_n=top_n, boot=boot, seed=o.seed)
    print(
        f"\n== {pool.name} ({key}): {len(pool.questions)} questions, dev {len(dev.questions)} / "
        f"test {len(test.questions)}, {pool.min_samples}+ samples each; N_max {ns}; "
        f"{o.orders} orders per test question, {o.cal_orders} per dev question"
    )
    curve = ", ".join(
        f"{k}: {100 * bon_acc[:, k - 1].mean():.1f}%/{bon_tok[:, k - 1].mean():.0f}"
        for k in (1, 2, 4, 8, 16, 32, 64)
        if k <= k_max
    )
    print(f"   BoN(k) on the test half (k: acc / tokens per question): {curve}")
    if semi:
        paper = semisynthetic.paper_bon()
        print(
            "   the paper's MATH-500 BoN(k): "
            + ", ".join(f"{k}: {a:.1f}%/{t:.0f}" for k, (a, t) in paper.items() if k in (1, 8, 64))
        )
    for r in sorted(results, key=lambda r: r.n_max):
        tuned = "; ".join(f"{t.policy} {t.note}" for t in r.tuned if t.note)
        print(f"   dev-chosen at N_max={r.n_max} ({r.seconds:.0f} s): {tuned}")
        for note in r.notes:
            print(f"      {note}")
    lw = max(24, *(len(label(c.policy)) for c in cells))
    print(
        f"   {'policy':{lw}s} {'N_max':>5s}  {'acc % [95% CI]':>19s}  {'served':>7s}  "
        f"{'paper':>7s}  {'samples':>7s}  {'gain pts at equal tokens':>24s}  "
        "token ratio at equal accuracy"
    )
    for s in sts:
        c = s.cell
        ratio = s.ratio.fmt(1, 2) + "x"
        where = (
            " beyond the curve (vs its most accurate k)"
            if s.beyond
            else f" (fixed k={s.curve_k:.1f})"
            if s.curve_k is not None
            else ""
        )
        wave = " [never past its 1st batch]" if c.single_wave >= 1.0 and c.policy != "bon" else ""
        print(
            f"   {label(c.policy):{lw}s} {c.n_max:5d}  {s.acc.fmt(100, 1):>19s}  "
            f"{s.served:7.0f}  {float(c.paper.mean()):7.0f}  {float(c.samples.mean()):7.1f}  "
            f"{s.gain.fmt(100, 1, True):>24s}  {ratio}{where}{wave}"
        )
    t1 = target1(sts)
    print(
        f"   target 1 (<= {TARGET_RATIO}x the best fixed N's tokens at equal accuracy at three "
        "operating points = the policy's three N_max; ratio [95% CI]):"
    )
    for p, (ok, text) in t1.items():
        print(f"     {'MET   ' if ok else 'missed'} {label(p):{lw}s} {text}")
    t2: dict[str, tuple[bool, str]] = {}
    if top_n is not None:
        t2 = target2(sts, top_n)
        print(
            f"   target 2 (at BoN@{top_n} accuracy, <= {TARGET_SEMI_FRACTION}x BoN@{top_n}'s "
            "tokens; accuracy difference paired per question):"
        )
        for p, (ok, text) in t2.items():
            print(f"     {'MET   ' if ok else 'missed'} {label(p):{lw}s} {text}")
    slug = key.replace("/", "_")
    png = plots / f"pareto-{slug}.png"
    plot(
        png,
        f"{pool.name}: test half ({len(test.questions)} questions, {o.orders} orders)",
        bon_acc,
        bon_tok,
        sts,
        top_n,
    )
    print(f"   plot: {png}")
    return {
        "pool": pool.name,
        "key": key,
        "questions": {"dev": len(dev.questions), "test": len(test.questions)},
        "n_max": ns,
        "bon_curve": [
            {
                "k": k + 1,
                "accuracy": float(bon_acc[:, k].mean()),
                "tokens": float(bon_tok[:, k].mean()),
            }
            for k in range(k_max)
        ],
        "tuned": {
            str(r.n_max): {t.policy: {"kwargs": t.kwargs, "note": t.note} for t in r.tuned}
            for r in results
        },
        "cells": [
            {
                "policy": s.cell.policy,
                "n_max": s.cell.n_max,
                "accuracy": [s.acc.point, s.acc.lo, s.acc.hi],
                "served_tokens": s.served,
                "paper_tokens": float(s.cell.paper.mean()),
                "samples": float(s.cell.samples.mean()),
                "gain": [s.gain.point, s.gain.lo, s.gain.hi],
                "ratio": [s.ratio.point, s.ratio.lo, s.ratio.hi],
                "beyond_curve": s.beyond,
                **({k: [v.point, v.lo, v.hi] for k, v in s.vs_top.items()} if s.vs_top else {}),
            }
            for s in sts
        ],
        "target1": {p: ok for p, (ok, _) in t1.items()},
        "target2": {p: ok for p, (ok, _) in t2.items()},
        "plot": str(png),
    }


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
    ap.add_argument("--orders", type=int, default=20, help="orders per test question")
    ap.add_argument("--cal-orders", type=int, default=6, help="orders per dev question (tuning)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--plots", default="runs/pareto/", help="directory for the PNGs")
    ap.add_argument("--json", help="write every number here")
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
        )
        boot, jobs = 50, 1
    else:
        o = Options(orders=a.orders, cal_orders=a.cal_orders, seed=a.seed)
        boot, jobs = a.bootstrap, max(1, a.jobs)
    policies = policies_now()
    t0 = time.perf_counter()
    print(
        f"policies (optscale.policies.POLICY_NAMES now): {', '.join(policies)}; finish model "
        "'length' (served tokens); CIs: 95% bootstrap over test questions "
        f"({boot} resamples)"
    )
    pools = {k: load_pool(k, o) for k in keys}  # built before the workers fork
    jobs_list = [(k, n) for k in keys for n in n_values(pools[k])]
    jobs_list.sort(key=lambda kn: -kn[1] * len(pools[kn[0]].questions))
    results: dict[str, list[JobResult]] = {k: [] for k in keys}
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(run_job, k, n, policies, o) for k, n in jobs_list]
            for f in futs:
                r = f.result()
                results[r.pool].append(r)
                progress(r)
    else:
        for k, n in jobs_list:
            r = run_job(k, n, policies, o)
            results[r.pool].append(r)
            progress(r)
    plots = Path(a.plots)
    doc = [report_pool(k, pools[k], results[k], o, boot, plots) for k in keys]
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
    print(f"done in {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n", "utf-8")


if __name__ == "__main__":
    main()
