"""Does the trained prior help? OptScale^t (trained prior) vs OptScale^t (constant prior, the
training-label mean) vs OptScale^0 on pools, and predictor throughput on CPU.

    .venv/bin/python benchmarks/predictor_prior.py [POOL ...] [--orders 200] [--questions 512]

Per pool: alpha / s_min chosen by `calibrate` (OptScale^0) on the dev half, the test half
replayed with them for every policy; priors only for questions whose text the pool carries.
Throughput: questions/s through the committed predictor (MiniLM + heads), batches of 64,
on MATH train questions, measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from optscale.calibrate import calibrate
from optscale.datasets import datasets_dir, load_dataset
from optscale.pools import read_pool, split_pool
from optscale.replay import ReplayConfig, replay
from services.predictor.model import TrainedPredictor
from services.predictor.server import DEFAULT_MODEL_DIR

DATA = Path(__file__).resolve().parent / "data"


def pools_to_run(given: list[str]) -> list[str]:
    """The pools named, else the committed CPU pools and the shared scored sample file."""
    shared = datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl"
    return given or [*map(str, sorted(DATA.glob("gsm8k*.jsonl.gz"))), str(shared)]


def throughput(p: TrainedPredictor, n: int) -> float:
    texts = [q.text for q in load_dataset("math_train", limit=n)]
    p.predict_sync(texts[:8])  # warm up
    t0 = time.perf_counter()
    for i in range(0, len(texts), 64):
        p.predict_sync(texts[i : i + 64])
    return len(texts) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", nargs="*")
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--questions", type=int, default=512, help="for the throughput figure")
    a = ap.parse_args()
    p = TrainedPredictor(DEFAULT_MODEL_DIR)
    print(
        f"predictor {DEFAULT_MODEL_DIR}: {throughput(p, a.questions):.0f} questions/s "
        f"(CPU, batches of 64, {a.questions} MATH train questions)"
    )
    for path in pools_to_run(a.pools):
        pool = read_pool(path)
        dev, test = split_pool(pool)
        with_text = [q for q in test.questions if q.question]
        print(f"\n== {pool.name}: test {len(test.questions)} questions, {len(with_text)} with text")
        if len(dev.questions) < 2 or len(with_text) < 2:
            print("   too few questions (or no question texts) for this comparison; skipped")
            continue
        n = min(16, pool.min_samples)
        cal = calibrate(dev, n_max=n, orders=min(a.orders, 50))
        trained = dict(
            zip(
                (q.question_id for q in with_text),
                p.predict_sync([q.question or "" for q in with_text]),
                strict=True,
            )
        )
        mu_c = statistics.fmean(m for m, _ in trained.values())
        sd_c = statistics.fmean(s for _, s in trained.values())
        print(
            f"   dev-chosen alpha={cal.alpha} s_min={cal.s_min}; trained prior mean "
            f"mu {mu_c:.3f} sigma {sd_c:.3f}"
        )
        rows = []
        for label, priors in (
            ("OptScale^0", None),
            ("OptScale^t trained", trained),
            ("OptScale^t constant", {q: (mu_c, sd_c) for q in trained}),
        ):
            policies = ("bon", "optscale0") if priors is None else ("bon", "optscalet")
            cfg = ReplayConfig(
                policies=policies,
                n_max=(n,),
                orders=a.orders,
                alpha=cal.alpha,
                s_min=cal.s_min,
                priors=priors,
            )
            res = replay(test, cfg)
            rows.append((label, res.cell(policies[1], n), res.cell("bon", n)))
        bon = rows[0][2]
        print(f"   N_max={n}: BoN acc {bon.accuracy:.3f}, {bon.tokens_per_question:.0f} tok/q")
        for label, c, _ in rows:
            print(
                f"     {label:20s} acc {c.accuracy:.3f} ({c.accuracy - bon.accuracy:+.3f}), "
                f"{c.tokens_per_question:.0f} tok/q = "
                f"{c.tokens_per_question / bon.tokens_per_question:.2f}x BoN"
            )


if __name__ == "__main__":
    main()
