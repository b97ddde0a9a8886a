"""Wave sizing for OptScale: how many of the samples the bound still asks for to start at once.

    .venv/bin/python benchmarks/wave_pacing.py [POOL ...] [--orders 50] [--quick]

OptScale keeps N* samples alive after its initial batch (``pace`` 1, the paper). N* is an
estimate that moves with every score, and a sample started now is useful only if the bound is
still unmet when it arrives, so ``pace < 1`` starts ``ceil(pace * (N* - n))`` of them and
re-decides as scores arrive (:meth:`optscale.policies.OptScale.paced`). This prints, per pool,
OptScale^0's test-half accuracy, served tokens (completed + cut at the stop, parallel-decoding
finish model), cut tokens, waves and latency (token-times from the first dispatch to the stop)
for each wave setting (the paper's initial batch ceil(N_max/3) or ``--small-initial`` samples,
each with every pace of ``--paces``), and its standing against the BoN curve on the same
orders. alpha / s_min come from ``calibrate`` on the dev half for each setting; every setting
is reported (none is chosen on the test half).

Default pools: the committed CPU pool, the shared scored-sample file and the two semi-synthetic
MATH-500 x 64 pools (benchmarks/semisynthetic.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import semisynthetic

from optscale.calibrate import calibrate
from optscale.datasets import datasets_dir
from optscale.pool_model import Pool
from optscale.pools import read_pool, split_pool
from optscale.replay import ReplayConfig, replay

ROOT = Path(__file__).resolve().parent


def default_pools(quick: bool) -> list[Pool]:
    files = [*sorted((ROOT / "data").glob("gsm8k*.jsonl.gz"))]
    files.append(datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl")
    pools = [read_pool(str(f)) for f in files]
    pools += semisynthetic.build_pools(seed=0, limit=120 if quick else None)
    return pools


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("pools", nargs="*", help="pool files (default: see the module docstring)")
    ap.add_argument("--orders", type=int, default=50)
    ap.add_argument("--paces", default="1,0.5,0.25")
    ap.add_argument("--small-initial", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="120 semi-synthetic questions, 10 orders")
    a = ap.parse_args()
    orders = 10 if a.quick else a.orders
    paces = [float(p) for p in a.paces.split(",")]
    settings = [
        (f"{init or 'N/3'}/{pace:g}", {"pace": pace} | ({"initial": init} if init else {}))
        for init in (None, a.small_initial)
        for pace in paces
    ]
    pools = [read_pool(p) for p in a.pools] if a.pools else default_pools(a.quick)
    for pool in pools:
        t0 = time.perf_counter()
        dev, test = split_pool(pool)
        n_max = pool.min_samples
        print(f"\n== {pool.name}: test {len(test.questions)} questions, N_max {n_max}")
        print(
            f"   {'init/pace':>9s} {'alpha':>5s} {'s_min':>5s} {'acc':>6s} {'served':>7s} "
            f"{'cut':>6s} {'waves':>5s} {'latency':>7s}  vs the BoN curve (test half)"
        )
        base = None
        for name, opts in settings:
            cal = calibrate(dev, n_max=n_max, orders=min(orders, 20), options=opts)
            cfg = ReplayConfig(
                policies=("optscale0",),
                n_max=(n_max,),
                orders=orders,
                alpha=cal.alpha,
                s_min=cal.s_min,
                policy_kwargs=opts,
            )
            res = replay(test, cfg)
            c, st = res.cell("optscale0", n_max), res.standing("optscale0", n_max)
            assert st is not None
            base = base or c
            ratio = "beyond the curve" if st.ratio is None else f"{st.ratio:.2f}x tokens"
            served = c.served_tokens_per_question / base.served_tokens_per_question
            latency = c.latency_per_question / base.latency_per_question
            print(
                f"   {name:>9s} {cal.alpha:5.2f} {cal.s_min:5.2f} {100 * c.accuracy:5.1f}% "
                f"{c.served_tokens_per_question:7.0f} {c.cut_tokens / c.n_episodes:6.0f} "
                f"{c.waves_per_question:5.2f} {c.latency_per_question:7.0f}  "
                f"{100 * st.gain:+5.1f} pts at equal tokens, {ratio} at equal accuracy; "
                f"{served:.2f}x served tokens and {latency:.2f}x latency of the paper's waves"
                + ("" if cal.useful else " [dev: no setting beats the curve]")
            )
        print(f"   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
