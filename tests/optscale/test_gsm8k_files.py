"""A questions file with GSM8K-style references is extracted and graded as ``--dataset gsm8k``."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

from optscale.cli import main
from optscale.datasets import load_questions_jsonl
from optscale.engines.generation.base import sample_id
from optscale.inprocess import InProcessGenerator, make_verifier
from optscale.policies import make_policy
from optscale.ports import GenerateRequest
from optscale.solve import solve_question
from optscale.types import GeneratedSample, SamplingParams

GSM8K_ROW = {
    "id": "g0",
    "question": "Janet has 6 boxes of 7 eggs. How many eggs?",
    "answer": "She has 6 * 7 = <<6*7=42>>42 eggs.\n#### 42",
}


class _NoBoxes:
    """A generator whose completions end GSM8K-style, with no answer extracted."""

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        for i in range(request.k):
            yield GeneratedSample(
                request.question_id, sample_id(request, i), "6 boxes of 7 is 42 eggs.\n#### 42",
                None, 12, "stop", mean_logprob=math.log(0.9),
            )


async def test_a_gsm8k_style_questions_file_is_graded_as_gsm8k(tmp_path: Path) -> None:
    qfile = tmp_path / "mine.jsonl"
    qfile.write_text(json.dumps(GSM8K_ROW) + "\n")
    (q,) = load_questions_jsonl(qfile)
    assert (q.answer, q.dataset) == ("42", "gsm8k")
    res, _ = await solve_question(
        q, make_policy("bon", n_max=2), InProcessGenerator(_NoBoxes()),
        make_verifier("confidence"), SamplingParams(seed=0),
    )
    assert (res.answer, res.reference, res.correct) == ("42", "42", True)


def test_cli_solve_grades_a_gsm8k_style_questions_file(tmp_path: Path) -> None:
    qfile = tmp_path / "mine.jsonl"
    qfile.write_text("".join(json.dumps({**GSM8K_ROW, "id": f"g{i}"}) + "\n" for i in range(6)))
    out = tmp_path / "out.jsonl"
    argv = ["solve", str(qfile), "--generator", "sim", "--policy", "bon", "--n-max", "4",
            "--out", str(out)]
    assert main(argv) == 0
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["reference"] for r in got] == ["42"] * 6
    assert all(r["correct"] == (r["answer"] == "42") for r in got)
    assert any(r["correct"] for r in got)  # the sim answers "42" (or a wrong digit)
