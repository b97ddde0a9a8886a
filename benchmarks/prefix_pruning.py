"""Prefix pruning on the recorded GSM8K pool: z chosen on the dev half, reported on the test half
against the (unpruned) BoN curve.

    .venv/bin/python benchmarks/prefix_pruning.py [--orders 100]

The pool (``benchmarks/data/gsm8k50-*.jsonl.gz``) was recorded before generators reported step
token ends, so they are rebuilt here: each sample's text is re-tokenized with the pool's model
tokenizer (the packaged Qwen2.5-Coder-1.5B GGUF, vocabulary only) and split into steps exactly
as the generator's log-prob summary splits the decoded pieces (a step closes on the token that
completes a blank line). A sample keeps its rebuilt ends only when it gets as many steps as it
has recorded step scores; its ends are then scaled to its recorded token count (re-tokenizing
decoded text may differ by a token or two from the decoded sequence). Samples that do not
match are never pruned. Pools recorded from now on carry ``step_token_ends`` (optscale solve).

For each policy (BoN, weighted SC and SC at N_max 16; OptScale^0 with its dev-chosen alpha /
s_min), ``z`` (:class:`optscale.pruning.PrefixPruning`, prune a prefix scoring ``z``
deviations below the finished samples) is chosen on the dev half by the gain over the BoN curve
at equal served tokens, then the test half is replayed with and without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
from pathlib import Path

from optscale.calibrate import calibrate
from optscale.engines.generation.base import LogprobSummary
from optscale.models import resolve_gguf
from optscale.pool_io import iter_json_lines
from optscale.pool_model import Pool
from optscale.pools import read_pool, split_pool
from optscale.pruning import PrefixPruning
from optscale.replay import ReplayConfig, replay

ROOT = Path(__file__).resolve().parent
POOL = ROOT / "data" / "gsm8k50-qwen1.5b-confidence.jsonl.gz"
Z_GRID = (math.inf, 3.0, 2.0, 1.5, 1.0, 0.5)


def rebuild_ends(path: Path) -> tuple[dict[str, tuple[int, ...]], int]:
    """{sample id: step token ends} for the samples whose rebuilt steps match; and the count."""
    from llama_cpp import Llama

    llm = Llama(str(resolve_gguf("qwen")), vocab_only=True, verbose=False)
    out: dict[str, tuple[int, ...]] = {}
    n = 0
    for _, rec in iter_json_lines(path):
        n += 1
        ids = llm.tokenize(rec["text"].encode(), add_bos=False, special=True)
        summary = LogprobSummary()
        for t in ids:
            summary.add(-0.0, llm.detokenize([t]).decode("utf-8", errors="replace"))
        summary.finish()
        ends, total = summary.step_ends, int(rec["completion_tokens"])
        if ends and len(ends) == len(rec.get("step_scores") or ()) and total > 0:
            scaled = [max(1, round(e * total / ends[-1])) for e in ends]
            if all(b > a for a, b in itertools.pairwise(scaled)):
                out[rec["sample_id"]] = tuple(scaled)
    return out, n


def with_ends(pool: Pool, ends: dict[str, tuple[int, ...]]) -> Pool:
    for q in pool.questions:
        q.samples = [
            dataclasses.replace(s, step_token_ends=ends.get(s.sample_id, ())) for s in q.samples
        ]
    return pool


def run(
    pool: Pool, policy: str, z: float, orders: int, n_max: int, alpha: float, s_min: float
) -> tuple[float, float, float, float, float | None]:
    """(accuracy, served tokens/q, pruned/q, gain over the BoN curve, token ratio)."""
    cfg = ReplayConfig(
        policies=(policy,),
        n_max=(n_max,),
        orders=orders,
        alpha=alpha,
        s_min=s_min,
        pruning=None if math.isinf(z) else PrefixPruning(z=z),
    )
    r = replay(pool, cfg)
    c, st = r.cell(policy, n_max), r.standing(policy, n_max)
    assert st is not None
    return c.accuracy, c.served_tokens_per_question, c.pruned / c.n_episodes, st.gain, st.ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("pool", nargs="?", default=str(POOL))
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--n-max", type=int, default=16)
    a = ap.parse_args()
    ends, n = rebuild_ends(Path(a.pool))
    pool = with_ends(read_pool(a.pool), ends)
    dev, test = split_pool(pool)
    print(
        f"{pool.name}: step ends rebuilt for {len(ends)}/{n} samples; dev "
        f"{len(dev.questions)} / test {len(test.questions)} questions, N_max {a.n_max}"
    )
    cal = calibrate(dev, n_max=a.n_max, orders=min(a.orders, 20))
    print(f"   OptScale^0 alpha={cal.alpha} s_min={cal.s_min} (dev)")
    print(
        f"   {'policy':10s} {'z':>4s}  {'acc':>6s} {'served':>7s} {'pruned':>6s}   "
        "vs the BoN curve (test half; first line: no pruning)"
    )
    for policy in ("bon", "wsc", "sc", "optscale0"):
        args = (a.n_max, cal.alpha, cal.s_min)
        dev_gain = {z: run(dev, policy, z, min(a.orders, 30), *args)[3] for z in Z_GRID}
        # ties go to no pruning, then to the mildest z
        best_z = max(Z_GRID, key=lambda z: (round(dev_gain[z], 6), z))
        gains = ", ".join(f"z={z}: {100 * g:+.1f}" for z, g in dev_gain.items())
        print(f"   {policy:10s} dev gains {gains}")
        for z in dict.fromkeys((math.inf, best_z)):
            acc, served, pruned, gain, ratio = run(test, policy, z, a.orders, *args)
            rt = "beyond the curve" if ratio is None else f"{ratio:.2f}x tokens"
            print(
                f"   {policy:10s} {z:4.1f}  {100 * acc:5.1f}% {served:7.0f} {pruned:6.2f}   "
                f"{100 * gain:+5.1f} pts at equal tokens, {rt} at equal accuracy"
            )


if __name__ == "__main__":
    main()
