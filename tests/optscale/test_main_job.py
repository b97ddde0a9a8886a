"""`make run` (the README's main command) parses, runs the setting chosen on the recorded pool's
dev half (benchmarks/data/embedded-default.json), and only on questions that choice was not
tuned on."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from optscale.cli import build_parser
from optscale.datasets import load_dataset
from optscale.pools import read_pools

ROOT = Path(__file__).resolve().parents[2]


def _run_recipe() -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index("run: setup") + 1
    recipe = ""
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        recipe += line.strip().rstrip("\\") + " "
    argv = shlex.split(recipe)
    return argv[argv.index("optscale") + 1 :]


def test_make_run_is_the_embedded_solve_chosen_on_dev() -> None:
    argv = _run_recipe()
    args = build_parser().parse_args(argv)
    doc = json.loads((ROOT / "benchmarks/data/embedded-default.json").read_text())
    choice = doc["choice"]
    assert argv[0] == "solve"
    assert args.generator == "llamacpp" and args.verifier == "confidence"
    assert (args.policy, args.n_max, args.aggregation) == (
        choice["policy"],
        choice["n_max"],
        choice["aggregation"],
    )
    if choice["alpha"] is not None:
        assert (args.alpha, args.s_min) == (choice["alpha"], choice["s_min"])
    assert doc["tuned_on"]["split"].startswith("dev")


def test_make_run_answers_questions_the_choice_was_not_tuned_on(shared_datasets: Path) -> None:
    args = build_parser().parse_args(_run_recipe())
    doc = json.loads((ROOT / "benchmarks/data/embedded-default.json").read_text())
    run_ids = {q.id for q in load_dataset("gsm8k", limit=args.limit, offset=args.offset)}
    assert run_ids and not run_ids & set(doc["tuned_on"]["question_ids"])


def test_make_run_answers_questions_beyond_every_recorded_pool(shared_datasets: Path) -> None:
    """The README says make run's questions lie beyond the recorded pool's (the pool grows from
    GSM8K's first questions): none of them is in any recorded file, dev or test half."""
    args = build_parser().parse_args(_run_recipe())
    run_ids = {q.id for q in load_dataset("gsm8k", limit=args.limit, offset=args.offset)}
    pool = read_pools([str(ROOT / "benchmarks/data/gsm8k*-qwen1.5b-confidence*.jsonl.gz")])
    assert run_ids and not run_ids & {q.question_id for q in pool.questions}
