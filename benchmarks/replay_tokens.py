"""Token ratio OptScale / BoN (and the oracle) at N_max = 16 and the largest N a pool allows.

    .venv/bin/python benchmarks/replay_tokens.py [POOL ...] [--orders 200] [--priors predictor]

Default pools: the committed CPU pool (benchmarks/data/*.jsonl.gz) and the shared scored sample
file. For each pool: alpha / s_min are chosen by `calibrate` on the dev half and the test half
is replayed with them (never tuned on the test half); then BoN, OptScale^0, OptScale^t (when
priors are given) and the oracle. Prints accuracy and tokens per question and the ratio to BoN.
Targets: accuracy >= BoN's and tokens <= 0.5x BoN.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from optscale.calibrate import calibrate
from optscale.datasets import datasets_dir
from optscale.pools import read_pool, split_pool
from optscale.replay import ReplayConfig, replay

ROOT = Path(__file__).resolve().parent


def default_pools() -> list[str]:
    ours = sorted(str(p) for p in (ROOT / "data").glob("*.jsonl.gz"))
    return [*ours, str(datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", nargs="*")
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--priors", help="'predictor' to add OptScale^t with the trained prior")
    a = ap.parse_args()
    for path in a.pools or default_pools():
        pool = read_pool(path)
        dev, test = split_pool(pool)
        ns = sorted({n for n in (16, pool.min_samples) if n <= pool.min_samples})
        print(
            f"\n== {pool.name}: {len(pool.questions)} questions (dev {len(dev.questions)}, "
            f"test {len(test.questions)}), {pool.min_samples}+ samples each"
        )
        if len(dev.questions) < 2 or len(test.questions) < 2:
            print("   too few questions for a dev/test split; skipped")
            continue
        cal = calibrate(dev, n_max=max(ns), orders=min(a.orders, 50))
        print(
            f"   dev-chosen alpha={cal.alpha} s_min={cal.s_min} "
            f"(dev: acc {cal.accuracy:.3f} vs BoN {cal.bon_accuracy:.3f})"
        )
        priors = None
        policies = ["bon", "optscale0", "oracle"]
        if a.priors:
            from optscale.commands.replay import predictor_priors

            priors = predictor_priors(test, None)
            policies.insert(2, "optscalet")
        cfg = ReplayConfig(
            policies=tuple(policies),
            n_max=tuple(ns),
            orders=a.orders,
            alpha=cal.alpha,
            s_min=cal.s_min,
            priors=priors,
        )
        res = replay(test, cfg)
        for n in ns:
            bon = res.cell("bon", n)
            print(f"   N_max={n}: BoN acc {bon.accuracy:.3f}, {bon.tokens_per_question:.0f} tok/q")
            for p in policies[1:]:
                c = res.cell(p, n)
                print(
                    f"     {p:10s} acc {c.accuracy:.3f} ({c.accuracy - bon.accuracy:+.3f}), "
                    f"{c.tokens_per_question:.0f} tok/q = "
                    f"{c.tokens_per_question / bon.tokens_per_question:.2f}x BoN"
                )


if __name__ == "__main__":
    main()
