"""``benchmarks/pareto.py``: a pool's table, targets, plot and JSON record."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import semisynthetic
from pareto_common import TARGET_RATIO, TARGET_SEMI_FRACTION, JobResult, Options, label
from pareto_standings import Standing, bon_arrays, standings, target1, target2

from optscale.pools import Pool, split_pool

# ---------------------------------------------------------------------------------------------
# output


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
