"""MR-Thinking on the recorded GSM8K pool's test half, beside BoN(k) and SC(k) at equal tokens.

    nice -n 10 .venv/bin/python benchmarks/mr_thinking.py [--rounds 4] [--limit N]
        [--fresh-first-round] [--carry response|answer] [--from-log LOG] [--write]

Runs Multi-round Thinking (optscale/mr_thinking.py) for ``--rounds`` rounds, no early stop, on
the test-half questions of benchmarks/data/gsm8k50-qwen1.5b-confidence.jsonl.gz with the
pool's model and settings. The pool has no header: the model name is read from its records,
the sampling settings (temperature 0.7, top_p 0.95, max 512 tokens, seed 0) are the ones
benchmarks/data/README.md records it with. Round 1 of MR-Thinking is an ordinary sample (the
same prompt, model and seed as the pool's sample ``/0``), so by default it is taken from the
pool instead of decoded again (``--fresh-first-round`` decodes it); rounds 2.. are decoded.

Printed (and with ``--write`` saved to benchmarks/data/mr-thinking-gsm8k-test.json with its
provenance): for each number of rounds n, MR-Thinking(n) with a fixed n and with the
stop-when-unchanged rule (both from the one run: rounds do not depend on the stop rule),
accuracy and completion tokens per question, and BoN and SC (majority vote) of the pool's
samples at the same tokens per question (linear between k = 1..16 on the running-best curve,
replayed over 50 sample orders of the same test questions).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from optscale.grading import is_correct
from optscale.inprocess import make_generator
from optscale.mr_thinking import MRResult, MRSettings, Round, run_mr_thinking, summarize
from optscale.pool_io import iter_json_lines
from optscale.pools import read_pool, split_pool
from optscale.ports import GenerateRequest
from optscale.replay import ReplayConfig, replay
from optscale.solve import build_prompt
from optscale.types import GeneratedSample, Question, SamplingParams

ROOT = Path(__file__).resolve().parent
POOL = ROOT / "data" / "gsm8k50-qwen1.5b-confidence.jsonl.gz"
OUT = ROOT / "data" / "mr-thinking-gsm8k-test.json"
POOL_PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=512, seed=0)
K_MAX = 16


class FirstRoundFromPool:
    """A generator whose round-1 samples (``first_index == 0``) are the pool's recorded
    samples ``/0``; later rounds go to the real generator."""

    def __init__(self, inner: Any, first: dict[str, dict[str, Any]]) -> None:
        self.inner, self.first, self.backend = inner, first, inner.backend

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        rec = self.first.get(request.question_id) if request.first_index == 0 else None
        if rec is None:
            async for s in self.inner.generate(request):
                yield s
            return
        yield GeneratedSample(
            question_id=request.question_id,
            sample_id=rec["sample_id"],
            text=rec["text"],
            answer=rec.get("answer"),
            completion_tokens=int(rec["completion_tokens"]),
            finish_reason=rec.get("finish_reason") or "stop",
            gen_seconds=float(rec.get("gen_seconds") or 0.0),
        )


def first_samples(path: Path, ids: set[str]) -> tuple[dict[str, dict[str, Any]], str]:
    """The pool's sample ``/0`` record of each question in ``ids``, and the pool's model."""
    out: dict[str, dict[str, Any]] = {}
    model = ""
    for _, rec in iter_json_lines(path):
        model = model or str(rec.get("model") or "")
        if rec["question_id"] in ids and rec["sample_id"] == f"{rec['question_id']}/0":
            out[rec["question_id"]] = rec
    return out, model


def curve_at(points: Sequence[tuple[float, float]], tokens: float) -> float:
    """Accuracy of the running-best curve through (0, 0) and ``points`` at ``tokens``."""
    env = [(0.0, 0.0)]
    for t, a in sorted(points):
        env.append((t, max(a, env[-1][1])))
    for (t0, a0), (t1, a1) in itertools.pairwise(env):
        if tokens <= t1:
            return a0 + (a1 - a0) * (tokens - t0) / (t1 - t0) if t1 > t0 else a1
    return env[-1][1]


def baselines(test: Any) -> dict[str, list[tuple[int, float, float]]]:
    """``(k, tokens per question, accuracy)`` of BoN(k) and SC(k), k = 1..16, on ``test``."""
    res = replay(
        test, ReplayConfig(policies=("bon", "sc"), n_max=tuple(range(1, K_MAX + 1)), orders=50)
    )
    return {
        p: [
            (k, res.cell(p, k).served_tokens_per_question, res.cell(p, k).accuracy)
            for k in range(1, K_MAX + 1)
        ]
        for p in ("bon", "sc")
    }


def recorded_order(test: Any) -> dict[str, list[tuple[int, float, float]]]:
    """BoN(k) and SC(k) on each question's samples ``/0 .. /k-1`` in recorded order: the
    same first sample as MR-Thinking's round 1 (a paired comparison). SC: the most frequent
    answer, ties to the one seen first."""
    acc = {"bon": [0.0] * K_MAX, "sc": [0.0] * K_MAX}
    tok = [0.0] * K_MAX
    for q in test.questions:
        order = sorted(q.samples, key=lambda s: int(s.sample_id.rsplit("/", 1)[1]))[:K_MAX]
        for k in range(1, K_MAX + 1):
            first = order[:k]
            best = max(first, key=lambda s: s.score)  # max keeps the first of ties
            counts: dict[str | None, int] = {}
            for s in first:
                if s.answer is not None:
                    counts[s.answer] = counts.get(s.answer, 0) + 1
            top = max(counts, key=lambda a: counts[a]) if counts else None
            voted = next((s for s in first if s.answer == top and top is not None), None)
            acc["bon"][k - 1] += best.correct
            acc["sc"][k - 1] += bool(voted is not None and voted.correct)
            tok[k - 1] += sum(s.tokens for s in first)
    n = max(1, len(test.questions))
    return {
        p: [(k, tok[k - 1] / n, acc[p][k - 1] / n) for k in range(1, K_MAX + 1)]
        for p in ("bon", "sc")
    }


def changes(results: Sequence[MRResult], rounds: int) -> list[dict[str, int]]:
    """Round r against round r - 1: answers changed, right -> wrong, wrong -> right, and
    responses copied verbatim."""
    out = []
    for r in range(1, rounds):
        c = {"round": r + 1, "changed": 0, "right_to_wrong": 0, "wrong_to_right": 0, "copied": 0}
        for res in results:
            if len(res.rounds) <= r:
                continue
            a, b = res.rounds[r - 1], res.rounds[r]
            ok = [
                x.answer is not None and is_correct(x.answer, res.reference or "") for x in (a, b)
            ]
            c["changed"] += not (
                a.answer is not None and b.answer is not None and is_correct(b.answer, a.answer)
            )
            c["right_to_wrong"] += ok[0] and not ok[1]
            c["wrong_to_right"] += ok[1] and not ok[0]
            c["copied"] += a.text.strip() == b.text.strip()
        out.append(c)
    return out


def rows(
    results: Sequence[MRResult], rounds: int, bases: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for stop in (False, True):
        for n in range(1, rounds + 1):
            row = summarize(results, n, stop_when_unchanged=stop)
            t = row["tokens_per_question"]
            for name, base in bases.items():
                for p in ("bon", "sc"):
                    acc = curve_at([(tok, a) for _, tok, a in base[p]], t)
                    row[f"{p}{name}_at_equal_tokens"] = acc
            out.append(row)
    return out


def read_log(path: Path, questions: Sequence[Question], rounds: int) -> list[MRResult]:
    """Results rebuilt from a run's ``--log`` (one line per round) or from ``optscale solve
    --strategy mr-thinking --out`` rows (one per question, with its rounds): the questions with at
    least ``rounds`` rounds logged, cut to ``rounds`` (a run stopped early keeps its complete
    rounds)."""
    got: dict[str, dict[int, Round]] = {}
    rows = [d for _, d in iter_json_lines(path)]
    if rows and "rounds" in rows[0]:  # solve --out rows
        rows = [{"id": row["id"], "round": x["index"], **x} for row in rows for x in row["rounds"]]
    for d in rows:
        got.setdefault(d["id"], {})[d["round"]] = Round(
            d["round"],
            f"{d['id']}/{d['round']}",
            d["text"],
            d["answer"],
            d["tokens"],
            d["finish_reason"],
            d["seconds"],
        )
    out = []
    for q in questions:
        rs = [got.get(q.id, {}).get(i) for i in range(rounds)]
        if all(r is not None for r in rs):
            out.append(
                MRResult(q.id, q.answer, [r for r in rs if r is not None], "n_max", 0.0, rounds)
            )
    if not out:
        raise SystemExit(f"{path}: no question has {rounds} rounds logged")
    print(f"{path}: {len(out)} of {len(questions)} questions have {rounds} rounds", file=sys.stderr)
    return out


def decode(
    args: argparse.Namespace,
    questions: Sequence[Question],
    first: dict[str, dict[str, Any]],
    model: str,
) -> list[MRResult]:
    """Run MR-Thinking with the packaged model, logging every round to ``args.log``."""
    gen: Any = make_generator("llamacpp", model=None, seed=0, n_threads=args.n_threads)
    if model and gen.backend.model_name != model:
        raise SystemExit(f"pool model {model} != packaged model {gen.backend.model_name}")
    if not args.fresh_first_round:
        gen = FirstRoundFromPool(gen, first)
    settings = MRSettings(n_rounds=args.rounds, carry=args.carry)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:

        def on_round(q: Question, r: Round) -> None:
            row = {
                "id": q.id,
                "round": r.index,
                "answer": r.answer,
                "tokens": r.tokens,
                "finish_reason": r.finish_reason,
                "seconds": r.seconds,
                "text": r.text,
            }
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            print(
                f"[{time.perf_counter() - t0:6.0f}s] {q.id} round {r.index + 1}: "
                f"{r.answer!r} ({r.tokens} tok)",
                file=sys.stderr,
            )

        return asyncio.run(
            run_mr_thinking(
                questions,
                gen,
                POOL_PARAMS,
                settings,
                build_prompt=build_prompt,
                dataset="gsm8k",
                on_round=on_round,
            )
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", default=str(POOL))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--carry", default="response", choices=["response", "answer"])
    ap.add_argument("--limit", type=int, default=None, help="first N test questions only")
    ap.add_argument("--fresh-first-round", action="store_true")
    ap.add_argument("--n-threads", type=int, default=None)
    ap.add_argument("--log", default="runs/mr_thinking_rounds.jsonl", help="every round, as run")
    ap.add_argument("--from-log", help="summarize a run's --log instead of decoding")
    ap.add_argument("--note", default="", help="free text saved with --write (provenance)")
    ap.add_argument("--write", action="store_true", help=f"save the JSON to {OUT}")
    args = ap.parse_args(argv)
    pool_path = Path(args.pool)
    _, test = split_pool(read_pool(pool_path))
    qs = test.questions[: args.limit] if args.limit else test.questions
    questions = [Question(q.question_id, q.question or "", q.reference, "gsm8k") for q in qs]
    first, model = first_samples(pool_path, {q.id for q in questions})
    if args.from_log:
        results = read_log(Path(args.from_log), questions, args.rounds)
    else:
        results = decode(args, questions, first, model)
    seconds = sum(
        x.seconds for r in results for x in r.rounds[0 if args.fresh_first_round else 1 :]
    )
    ids = {r.id for r in results}
    test = replace(test, questions=[q for q in test.questions if q.question_id in ids])
    base = baselines(test)
    paired = recorded_order(test)
    table = rows(results, args.rounds, {"": base, "_recorded_order": paired})
    moved = changes(results, args.rounds)
    print(
        f"MR-Thinking on {len(results)} test questions of {pool_path.name} ({model}); "
        f"BoN/SC of the pool's samples at equal tokens"
    )
    print(
        "BoN/SC = at equal tokens on the curve over 50 sample orders; rec = in recorded order "
        "(samples /0, /1, ...: the same first sample as round 1)"
    )
    print(
        f"{'rounds':>6} {'stop':>9} {'acc':>6} {'tok/q':>7} {'r/q':>5} {'BoN':>6} {'SC':>6} "
        f"{'BoN rec':>7} {'SC rec':>6}"
    )
    for r in table:
        print(
            f"{r['rounds']:>6} {'unchanged' if r['stop_when_unchanged'] else 'fixed':>9} "
            f"{100 * r['accuracy']:5.1f}% {r['tokens_per_question']:7.0f} "
            f"{r['rounds_per_question']:5.2f} {100 * r['bon_at_equal_tokens']:5.1f}% "
            f"{100 * r['sc_at_equal_tokens']:5.1f}% "
            f"{100 * r['bon_recorded_order_at_equal_tokens']:6.1f}% "
            f"{100 * r['sc_recorded_order_at_equal_tokens']:5.1f}%"
        )
    for c in moved:
        print(
            f"round {c['round']} vs {c['round'] - 1}: {c['changed']} answers changed "
            f"({c['wrong_to_right']} wrong->right, {c['right_to_wrong']} right->wrong), "
            f"{c['copied']} responses copied verbatim"
        )
    for name, b in (("", base), (" rec", paired)):
        for p in ("bon", "sc"):
            pts = " ".join(f"k={k}:{tok:.0f}/{100 * a:.1f}%" for k, tok, a in b[p][:6])
            print(f"{p}{name} (k: tokens/accuracy) {pts}")
    doc = {
        "what": "MR-Thinking on the recorded pool's test half vs BoN/SC at equal tokens",
        "command": "benchmarks/mr_thinking.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
        "pool": pool_path.name,
        "model": model,
        "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 512, "seed": 0},
        "settings": {
            "rounds": args.rounds,
            "carry": args.carry,
            "first_round": "decoded" if args.fresh_first_round else "pool sample /0",
        },
        "from_log": args.from_log,
        "note": args.note,
        "decode_seconds": round(seconds, 1),
        "rows": table,
        "round_changes": moved,
        "bon_recorded_order": [
            {"k": k, "tokens_per_question": t, "accuracy": a} for k, t, a in paired["bon"]
        ],
        "sc_recorded_order": [
            {"k": k, "tokens_per_question": t, "accuracy": a} for k, t, a in paired["sc"]
        ],
        "bon": [{"k": k, "tokens_per_question": t, "accuracy": a} for k, t, a in base["bon"]],
        "sc": [{"k": k, "tokens_per_question": t, "accuracy": a} for k, t, a in base["sc"]],
        "questions": [r.as_dict(texts=False) for r in results],
    }
    if args.write:
        OUT.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
