"""Choose the embedded default (`make run`) on the recorded pool's dev half; report the test half.

    .venv/bin/python benchmarks/embedded_default.py [POOL ...] [--budget 1600] [--orders 50] \
        [--write]

The pool: the recorded GSM8K pool (every `benchmarks/data/gsm8k*-qwen1.5b-confidence*.jsonl.gz`
file, read as one pool; see recorded_pools.py), or the given files / quoted glob patterns read
as one pool.

Candidates: the confidence scorer's step aggregation (mean, min, last: the pool is re-scored
from its step scores) x the policy (bon, wsc, sc, esc, asc, and optscale0 with alpha / s_min
calibrated on the dev half for that aggregation) x N_max (4, 8, 16). Rule: the highest dev
accuracy among candidates whose served tokens per question (completed + cut at the stop) fit the
budget — what `make run` can afford in well under 10 minutes on 2 CPU cores (10 questions x
1,600 tokens at the ~44 tok/s batched llama.cpp decoding reaches); ties within 0.5 points go to
fewer tokens. The winner is then replayed on the test half against the BoN curve and majority
vote at the same N_max. ``--write`` saves the choice with its provenance to
benchmarks/data/embedded-default.json, which `make run` and tests/optscale/test_main_job.py
follow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recorded_pools import GSM8K_POOL_GLOB

from optscale.aggregate import rescore_pool
from optscale.calibrate import calibrate
from optscale.params import pool_sha256
from optscale.pools import Pool, read_pools, split_pool
from optscale.replay import ReplayConfig, replay

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "data" / "embedded-default.json"
AGGREGATIONS = ("mean", "min", "last")
POLICIES = ("bon", "wsc", "sc", "esc", "asc", "optscale0")
N_VALUES = (4, 8, 16)


def candidates(dev: Pool, agg: str, orders: int) -> list[dict[str, Any]]:
    pool = rescore_pool(dev, agg)
    cal = calibrate(pool, n_max=max(N_VALUES), orders=min(orders, 20))
    res = replay(
        pool,
        ReplayConfig(
            policies=POLICIES, n_max=N_VALUES, orders=orders, alpha=cal.alpha, s_min=cal.s_min
        ),
    )
    out = []
    for p in POLICIES:
        for n in N_VALUES:
            c, st = res.cell(p, n), res.standing(p, n)
            assert st is not None
            out.append(
                {
                    "aggregation": agg,
                    "policy": p,
                    "n_max": n,
                    "alpha": cal.alpha if p == "optscale0" else None,
                    "s_min": cal.s_min if p == "optscale0" else None,
                    "accuracy": c.accuracy,
                    "served_tokens_per_question": c.served_tokens_per_question,
                    "gain_vs_bon_curve": st.gain,
                    "optscale0_verdict": cal.verdict if p == "optscale0" else None,
                }
            )
    return out


def pick(rows: list[dict[str, Any]], budget: float) -> dict[str, Any]:
    fit = [r for r in rows if r["served_tokens_per_question"] <= budget]
    if not fit:
        raise SystemExit(f"no candidate fits {budget} tokens per question")
    best = max(r["accuracy"] for r in fit)
    near = [r for r in fit if r["accuracy"] >= best - 0.005]
    return min(near, key=lambda r: (r["served_tokens_per_question"], -r["accuracy"]))


def test_report(test: Pool, choice: dict[str, Any], orders: int) -> dict[str, Any]:
    pool = rescore_pool(test, choice["aggregation"])
    n, p = choice["n_max"], choice["policy"]
    kw = {"alpha": choice["alpha"], "s_min": choice["s_min"]} if choice["alpha"] else {}
    policies = tuple(dict.fromkeys((p, "sc", "bon")))
    res = replay(pool, ReplayConfig(policies=policies, n_max=(n,), orders=orders, **kw))
    out: dict[str, Any] = {}
    for q in policies:
        c, st = res.cell(q, n), res.standing(q, n)
        assert st is not None
        out[q] = {
            "accuracy": c.accuracy,
            "served_tokens_per_question": c.served_tokens_per_question,
            "gain_vs_bon_curve": st.gain,
            "token_ratio_vs_bon_curve": st.ratio,
        }
    assert res.curve is not None
    out["bon_curve"] = [{"k": k, "tokens": t, "accuracy": a} for k, t, a in res.curve.points()]
    return out


def _acc_tok(r: dict[str, Any]) -> str:
    return f"{100 * r['accuracy']:5.1f}% {r['served_tokens_per_question']:5.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pools", nargs="*", metavar="POOL", help="default: the recorded GSM8K pool")
    ap.add_argument("--budget", type=float, default=1600.0, help="served tokens per question")
    ap.add_argument("--orders", type=int, default=50)
    ap.add_argument("--write", action="store_true", help=f"save the choice to {OUT}")
    a = ap.parse_args()
    pool = read_pools(a.pools or [GSM8K_POOL_GLOB])
    dev, test = split_pool(pool)
    rows = [r for agg in AGGREGATIONS for r in candidates(dev, agg, a.orders)]
    print(f"dev half of {pool.name}: {len(dev.questions)} questions (acc, served tok/q)")
    for agg in AGGREGATIONS:
        for p in POLICIES:
            cells = [r for r in rows if r["aggregation"] == agg and r["policy"] == p]
            print(f"  {agg:5s} {p:9s} " + "  ".join(f"N{r['n_max']}: {_acc_tok(r)}" for r in cells))
    verdicts = {r["aggregation"]: r["optscale0_verdict"] for r in rows if r["optscale0_verdict"]}
    for agg, v in verdicts.items():
        print(f"  optscale0 calibration ({agg}): {v}")
    choice = pick(rows, a.budget)
    print(
        f"chosen (budget {a.budget:.0f} tokens/question): {choice['policy']} N_max "
        f"{choice['n_max']}, aggregation {choice['aggregation']}: dev "
        f"{100 * choice['accuracy']:.1f}% at {choice['served_tokens_per_question']:.0f} tokens"
    )
    report = test_report(test, choice, a.orders)
    print(f"test half ({len(test.questions)} questions), N_max {choice['n_max']}:")
    for q in (choice["policy"], "sc", "bon"):
        r = report[q]
        ratio = r["token_ratio_vs_bon_curve"]
        print(
            f"  {q:9s} {100 * r['accuracy']:5.1f}% {r['served_tokens_per_question']:5.0f} tok/q; "
            f"{100 * r['gain_vs_bon_curve']:+.1f} pts vs the BoN curve at equal tokens, "
            + ("beyond the curve" if ratio is None else f"{ratio:.2f}x its tokens")
            + " at equal accuracy"
        )
    if a.write:
        doc = {
            "rule": "highest dev accuracy with served tokens/question <= budget (ties within "
            "0.5 points: fewer tokens)",
            "budget_tokens_per_question": a.budget,
            "choice": {k: choice[k] for k in ("policy", "n_max", "aggregation", "alpha", "s_min")},
            "dev": {"accuracy": choice["accuracy"], "tokens": choice["served_tokens_per_question"]},
            "test": report,
            "tuned_on": {
                "pool": pool.name,
                "pool_sha256": pool_sha256(dev),
                "split": "dev (seed 0)",
                "question_ids": sorted(q.question_id for q in dev.questions),
            },
            "orders": a.orders,
        }
        OUT.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
