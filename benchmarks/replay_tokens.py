"""Every stopping policy against the BoN curve, on the test half, with dev-chosen parameters.

    .venv/bin/python benchmarks/replay_tokens.py [POOL ...] [--orders 200] [--priors predictor]

Default pools: the recorded GSM8K pool (every file
`benchmarks/data/gsm8k*-qwen1.5b-confidence*.jsonl.gz`, read as one pool) and the shared scored
sample file. A POOL argument is a file or a quoted glob pattern (its files read as one pool).
For each pool: alpha / s_min of OptScale^0 are chosen by `calibrate` on the dev half (never the
test half; its verdict says whether stopping beats the best fixed N at all), then the
test half is replayed at N_max = 8 and the pool's largest N with BoN, SC, weighted SC, ESC,
ASC, DSC, OptScale^0 (and OptScale^t with priors), the oracle, and the hybrid stop
(`optscale.bayes`) with its price and selection also chosen on the dev half. Printed per
policy: accuracy, served tokens per question (completed + cut at the stop, parallel-decoding
finish model) and the paper's count (completed only), then the accuracy gain over the BoN
curve (every fixed k <= N_max on the same orders) at equal served tokens and the token ratio
to the fixed k of equal accuracy. Target: ratio <= 0.5 at no accuracy loss.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recorded_pools import GSM8K_POOL_GLOB

from optscale.calibrate import calibrate
from optscale.datasets import datasets_dir
from optscale.pools import read_pools, split_pool
from optscale.replay import POLICY_LABELS, ReplayConfig, replay

POLICIES = ("bon", "sc", "wsc", "esc", "asc", "dsc", "optscale0", "oracle")


def default_pools() -> list[str]:
    return [GSM8K_POOL_GLOB, str(datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", nargs="*")
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--priors", help="'predictor' to add OptScale^t with the trained prior")
    a = ap.parse_args()
    for path in a.pools or default_pools():
        pool = read_pools([path])
        dev, test = split_pool(pool)
        ns = sorted({n for n in (8, pool.min_samples) if n <= pool.min_samples})
        print(
            f"\n== {pool.name}: {len(pool.questions)} questions (dev {len(dev.questions)}, "
            f"test {len(test.questions)}), {pool.min_samples}+ samples each"
        )
        if len(dev.questions) < 2 or len(test.questions) < 2:
            print("   too few questions for a dev/test split; skipped")
            continue
        cal = calibrate(dev, n_max=max(ns), orders=min(a.orders, 50))
        print(f"   dev-chosen OptScale^0: alpha={cal.alpha} s_min={cal.s_min}; {cal.verdict}")
        priors = None
        policies = list(POLICIES)
        if a.priors:
            from optscale.commands.replay import predictor_priors

            priors = predictor_priors(test, None)
            policies.insert(-1, "optscalet")
        cfg = ReplayConfig(
            policies=tuple(policies),
            n_max=tuple(ns),
            orders=a.orders,
            alpha=cal.alpha,
            s_min=cal.s_min,
            priors=priors,
        )
        res = replay(test, cfg)
        hyb = calibrate(dev, policy="hybrid", n_max=max(ns), orders=min(a.orders, 50))
        print(f"   dev-chosen hybrid: {hyb.setting}; {hyb.verdict}")
        tuned = hyb.policy_kwargs()
        alpha, s_min = tuned.pop("alpha"), tuned.pop("s_min")
        hcfg = ReplayConfig(
            policies=("hybrid",),
            n_max=tuple(ns),
            orders=a.orders,
            alpha=alpha,
            s_min=s_min,
            policy_kwargs=tuned,
        )
        for key, cell in replay(test, hcfg).cells.items():
            res.cells[key] = cell
        for n in ns:
            print(f"   test half, N_max={n}  (acc, served tok/q, paper tok/q; vs the BoN curve)")
            for p in res.policies:
                c, st = res.cell(p, n), res.standing(p, n)
                assert st is not None
                ratio = "beyond the curve" if st.ratio is None else f"{st.ratio:.2f}x tokens"
                k = "" if st.curve_k is None else f" (fixed k={st.curve_k:.1f})"
                print(
                    f"     {POLICY_LABELS.get(p, p):30s} {100 * c.accuracy:5.1f}%  "
                    f"{c.served_tokens_per_question:6.0f}  {c.tokens_per_question:6.0f}   "
                    f"{100 * st.gain:+5.1f} pts at equal tokens, {ratio} at equal accuracy{k}"
                )
        assert res.curve is not None
        pts = ", ".join(f"{k}: {100 * acc:.1f}%/{t:.0f}" for k, t, acc in res.curve.points())
        print(f"   BoN(k) on the test half (k: acc/tokens): {pts}")


if __name__ == "__main__":
    main()
