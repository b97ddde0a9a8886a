"""DSC per question from a predicted prior (``dsc_prior``, the controller's DSC) beside the
batch DSC of replay (``dsc``), SC, ESC and the BoN curve: test half, dev-tuned ``easy_mu``.

    .venv/bin/python benchmarks/dsc_prior.py [--orders 30] [--quick]

Pools: the two semi-synthetic MATH-500 x 64 pools (priors: the questions' real PRM statistics
plus the predictor's measured error, :func:`semisynthetic.noisy_priors`), the shared MATH
sample file and the recorded GSM8K pool (priors: each question's own score statistics plus
the same measured error — a stand-in for a predictor of that error, see
``pareto_common.priors_for``). ``easy_mu`` / ``window`` are chosen by ``calibrate`` on the dev
half (gain over the BoN curve at equal served tokens); batch DSC's window is its paper's 4.
"""

from __future__ import annotations

import argparse
import time

from pareto_common import Options, load_pool, priors_for

from optscale.calibrate import calibrate
from optscale.pools import split_pool
from optscale.replay import POLICY_LABELS, ReplayConfig, replay

POOLS = ("semi-calibrated", "semi-noisy", "math100", "gsm8k")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--orders", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="120 questions per pool, 8 orders")
    a = ap.parse_args()
    orders = 8 if a.quick else a.orders
    for key in POOLS:
        t0 = time.perf_counter()
        pool = load_pool(key, Options(questions=120 if a.quick else None, seed=0))
        priors = priors_for(key, pool, 0)
        dev, test = split_pool(pool)
        n_max = min(pool.min_samples, 64)
        cal = calibrate(dev, policy="dsc_prior", n_max=n_max, orders=min(orders, 10), priors=priors)
        tuned = dict(cal.policy_params)
        base = ReplayConfig(
            policies=("sc", "esc", "dsc"), n_max=(n_max,), orders=orders, priors=priors
        )
        res = replay(test, base)
        own = ReplayConfig(  # its own run: the tuned window must not reach ESC
            policies=("dsc_prior",), n_max=(n_max,), orders=orders, priors=priors,
            policy_kwargs=tuned,
        )  # fmt: skip
        res.cells.update(replay(test, own).cells)
        print(
            f"\n== {pool.name}: test {len(test.questions)} questions, N_max {n_max}; dev-chosen "
            f"dsc_prior {cal.setting} ({cal.verdict})"
        )
        for p in res.policies:
            c, st = res.cell(p, n_max), res.standing(p, n_max)
            assert st is not None
            ratio = "beyond the curve" if st.ratio is None else f"{st.ratio:.2f}x tokens"
            print(
                f"   {POLICY_LABELS.get(p, p):30s} {100 * c.accuracy:5.1f}% "
                f"{c.served_tokens_per_question:8.0f} tok/q {c.samples_per_question:5.2f} samples"
                f"   {100 * st.gain:+5.1f} pts at equal tokens, {ratio} at equal accuracy"
            )
        print(f"   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
