"""Multi-round Thinking: the paper's round prompt, rounds chained through the generator port,
the stop-when-unchanged rule, token counting, summaries from one run, and the solve CLI."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from optscale.cli import main
from optscale.errors import InvalidArgumentError
from optscale.loop import question_seed
from optscale.mr_thinking import (
    MRSettings,
    Round,
    carried_text,
    outcome_after,
    round_prompt,
    run_mr_thinking,
    summarize,
)
from optscale.ports import GenerateRequest
from optscale.solve import build_prompt
from optscale.types import GeneratedSample, Question, SamplingParams

PREVIOUS = re.compile(r"previous answer is: <answer> .*\\boxed\{(\d+)\}.* </answer>", re.DOTALL)


class Reviser:
    """Answers 1 to a fresh prompt; shown a previous answer N, answers min(N + 1, cap) — so
    the answers only climb when the previous round really is in the prompt."""

    def __init__(self, cap: int = 99, fail: tuple[str, int] | None = None) -> None:
        self.cap, self.fail = cap, fail
        self.requests: list[GenerateRequest] = []

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        self.requests.append(request)
        if self.fail == (request.question_id, request.first_index):
            raise RuntimeError("engine down")
        m = PREVIOUS.search(request.prompt)
        ans = 1 if m is None else min(int(m.group(1)) + 1, self.cap)
        yield GeneratedSample(
            question_id=request.question_id,
            sample_id=f"{request.question_id}/{request.first_index}",
            text=f"<think>hidden</think>so the answer is \\boxed{{{ans}}}",
            answer=None,  # read from the text by the driver
            completion_tokens=10 * (request.first_index + 1),
            finish_reason="stop",
        )


QS = [Question(f"q{i}", f"question {i}?", "3", "gsm8k") for i in range(3)]
PARAMS = SamplingParams(seed=5)


def test_round_prompt_is_the_papers_template() -> None:
    first = Round(0, "q/0", "<think>long</think> Step 1 ... \\boxed{7}", "7", 12, "stop", 0.0)
    assert round_prompt("Q?", None) == "Q?"
    assert round_prompt("Q?", first) == (
        "Q?\nThe assistant's previous answer is: <answer> Step 1 ... \\boxed{7} </answer>, "
        "and please re-answer."
    )
    assert carried_text(first, "answer") == "7"
    assert "<answer> 7 </answer>" in round_prompt("Q?", first, "answer")


async def test_each_round_sees_the_previous_answer_and_tokens_add_up() -> None:
    gen = Reviser()
    res = await run_mr_thinking(QS, gen, PARAMS, MRSettings(4), build_prompt=build_prompt)
    for r in res:
        assert [x.answer for x in r.rounds] == ["1", "2", "3", "4"]
        assert [x.sample_id for x in r.rounds] == [f"{r.id}/{i}" for i in range(4)]
        assert r.answer == "4" and r.correct is False and r.reason == "n_max"
        assert r.tokens == 10 + 20 + 30 + 40
    # round 0 is the ordinary first sample: the plain prompt and BoN's seed of sample 0
    for req in gen.requests:
        assert req.params.seed == question_seed(5, req.question_id) + req.first_index
        assert req.k == 1
        base = build_prompt(next(q for q in QS if q.id == req.question_id))
        assert req.prompt.startswith(base)
        assert (req.first_index == 0) == (req.prompt == base)
    # the reasoning block of the previous round is not carried
    assert all("hidden" not in req.prompt for req in gen.requests)
    # waves: every question's round r is asked before any round r + 1
    assert [req.first_index for req in gen.requests] == sorted(
        req.first_index for req in gen.requests
    )


async def test_stop_when_unchanged() -> None:
    settings = MRSettings(5, stop_when_unchanged=True)
    res = await run_mr_thinking(QS, Reviser(cap=2), PARAMS, settings, build_prompt=build_prompt)
    for r in res:
        assert [x.answer for x in r.rounds] == ["1", "2", "2"]
        assert r.reason == "unchanged" and r.tokens == 60
    res = await run_mr_thinking(
        QS, Reviser(cap=2), PARAMS, MRSettings(5), build_prompt=build_prompt
    )
    assert all(len(r.rounds) == 5 and r.reason == "n_max" for r in res)


async def test_summaries_of_fewer_rounds_come_from_one_run() -> None:
    res = await run_mr_thinking(
        QS, Reviser(cap=3), PARAMS, MRSettings(4), build_prompt=build_prompt
    )
    rows = [summarize(res, n, stop_when_unchanged=False) for n in (1, 2, 3, 4)]
    assert [r["accuracy"] for r in rows] == [0.0, 0.0, 1.0, 1.0]
    assert [r["tokens_per_question"] for r in rows] == [10, 30, 60, 100]
    stop = summarize(res, 4, stop_when_unchanged=True)  # 1, 2, 3, 3: stops at round 4
    assert stop["rounds_per_question"] == 4 and stop["accuracy"] == 1.0
    assert outcome_after(res[0].rounds, 3, stop_when_unchanged=True) == (3, "n_max")
    with pytest.raises(InvalidArgumentError):
        summarize([], 1, stop_when_unchanged=False)


async def test_a_failed_round_ends_only_its_question() -> None:
    gen = Reviser(fail=("q1", 2))
    res = await run_mr_thinking(QS, gen, PARAMS, MRSettings(4), build_prompt=build_prompt)
    by_id = {r.id: r for r in res}
    assert by_id["q1"].reason == "failed" and by_id["q1"].answer == "2"
    assert len(by_id["q1"].rounds) == 3 and by_id["q1"].tokens == 30
    assert by_id["q0"].reason == "n_max" and by_id["q0"].answer == "4"


def test_bad_settings() -> None:
    with pytest.raises(InvalidArgumentError, match="rounds"):
        MRSettings(0).validate()
    with pytest.raises(InvalidArgumentError, match="carry"):
        MRSettings(2, carry="everything").validate()


def test_cli_solve_mr_thinking_writes_every_round(tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": "2+2?", "answer": "4"}) + "\n" for i in range(2)
        )
    )
    out = tmp_path / "mr.jsonl"
    argv = ["solve", str(qfile), "--generator", "sim", "--strategy", "mr-thinking"]
    assert main([*argv, "--n-max", "3", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "q1"]
    for r in rows:
        assert r["policy"] == "mr_thinking" and r["rounds_used"] == 3
        assert r["tokens"] == sum(x["tokens"] for x in r["rounds"]) > 0
        assert r["answer"] == r["round_answers"][-1]
    assert main([*argv, "--record", str(tmp_path / "p.jsonl"), "--out", str(out)]) == 2


async def test_a_round_is_reported_as_soon_as_it_is_decoded() -> None:
    """q1's round waits until q0's round of the same wave has been reported: a driver that
    reports only after the whole wave would never get there."""
    reported = asyncio.Event()

    class Gated(Reviser):
        async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
            if request.question_id == "q1":
                await reported.wait()
            async for s in super().generate(request):
                yield s

    def on_round(q: Question, r: Round) -> None:
        if q.id == "q0":
            reported.set()

    run = run_mr_thinking(
        QS[:2], Gated(), PARAMS, MRSettings(2), build_prompt=build_prompt, on_round=on_round
    )
    res = await asyncio.wait_for(run, timeout=30)  # a deadlock guard, not a timing assertion
    assert [len(r.rounds) for r in res] == [2, 2]
