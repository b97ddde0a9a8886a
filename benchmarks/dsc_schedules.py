"""Batch DSC: the paper's sequential algorithm (``optscale.dsc.dsc_batch_paper``) against the
parallel adaptation the controller runs (``optscale.dsc.dsc_batch``: midpoint probe, the other
open questions one sample at a time, a shared board; samples finishing first in, first out),
and self-consistency at N_max, on the same sample orders of each pool. Prints accuracy, tokens
per question (completed samples; the parallel schedule's cut samples beside) and the token
ratio parallel / paper, all measured in this run.

    .venv/bin/python benchmarks/dsc_schedules.py [--orders 20] [--window 4] [--semi]

Ranking: by the pre-sample (each question's first sample's score, as without priors), and by
the question's own mean score (an oracle-quality prior: the best ranking a predictor could
give)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recorded_pools import read_recorded_gsm8k

from optscale.datasets import datasets_dir
from optscale.dsc import dsc_batch, dsc_batch_paper
from optscale.grading import normalize_answer
from optscale.pools import Pool, read_pool
from optscale.replay import sample_orders


def _sc(order: list, n: int) -> tuple[bool, int]:  # type: ignore[type-arg]
    used = order[:n]
    votes = Counter(normalize_answer(s.answer) for s in used if s.answer)
    if not votes:
        return bool(max(used, key=lambda s: s.score).correct), sum(s.tokens for s in used)
    top = max(votes.values())
    win = next(s for s in used if s.answer and votes[normalize_answer(s.answer)] == top)
    return bool(win.correct), sum(s.tokens for s in used)


def run_pool(name: str, pool: Pool, orders: int, window: int) -> None:
    qs = pool.questions
    per_q = {q.question_id: sample_orders(q, orders, 0) for q in qs}
    mean_score = {q.question_id: sum(s.score for s in q.samples) / len(q.samples) for q in qs}
    for n in (8, 16, 64):
        if n > pool.min_samples:
            continue
        rows: dict[str, list[float]] = {}
        for o in range(orders):
            batch = {qid: os[o] for qid, os in per_q.items()}
            for ranking, ease in (("pre-sample", None), ("own mean", mean_score)):
                for label, f in (("paper", dsc_batch_paper), ("parallel", dsc_batch)):
                    got = f(qs, batch, n_max=n, window=window, difficulty=ease)
                    r = rows.setdefault(f"dsc {label:8s} {ranking}", [0.0, 0.0, 0.0])
                    r[0] += sum(e.correct for e in got.values())
                    r[1] += sum(e.tokens for e in got.values())
                    r[2] += sum(e.inflight_tokens for e in got.values())
            r = rows.setdefault("sc@N_max", [0.0, 0.0, 0.0])
            for qid in batch:
                ok, t = _sc(batch[qid], n)
                r[0] += ok
                r[1] += t
        k = orders * len(qs)
        print(f"\n{name}: {len(qs)} questions x {orders} orders, N_max {n}, window {window}")
        print(f"  {'rule':32s} {'accuracy':>8s} {'tokens/q':>9s} {'cut/q':>7s}")
        for label, (right, tok, cut) in rows.items():
            print(f"  {label:32s} {100 * right / k:7.1f}% {tok / k:9.0f} {cut / k:7.0f}")
        for ranking in ("pre-sample", "own mean"):
            par, pap = rows[f"dsc parallel {ranking}"], rows[f"dsc paper    {ranking}"]
            print(f"  parallel / paper tokens ({ranking}): {par[1] / pap[1]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=20)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--semi", action="store_true", help="also the semi-synthetic 64-sample pools")
    args = ap.parse_args()
    run_pool("recorded GSM8K (confidence)", read_recorded_gsm8k(), args.orders, args.window)
    math = read_pool(str(datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl"))
    run_pool("MATH sample file (PRM)", math, args.orders, args.window)
    if args.semi:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from semisynthetic_models import build_pool

        for kind in ("calibrated", "noisy"):
            run_pool(f"semi-synthetic MATH-500 x 64 ({kind})", build_pool(kind), args.orders, 4)


if __name__ == "__main__":
    main()
