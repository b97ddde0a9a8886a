"""The embedded solver: streaming loop, early stop + cancel, results, recording, CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from optscale.cli import main
from optscale.inprocess import InProcessGenerator, make_generator, make_verifier
from optscale.policies import make_policy
from optscale.pools import read_pool
from optscale.ports import GenerateRequest
from optscale.solve import solve_all, solve_question
from optscale.types import GeneratedSample, Question, SamplingParams

Q = [Question(f"q{i}", f"question {i}", "42", "gsm8k") for i in range(6)]


async def test_optscale_stops_early_and_bon_does_not() -> None:
    gen, ver = make_generator("sim", seed=0), make_verifier("confidence")
    params = SamplingParams(seed=0)
    bon = await solve_all(Q, lambda q: make_policy("bon", n_max=16), gen, ver, params, n_max=16)
    opt = await solve_all(
        Q, lambda q: make_policy("optscale0", n_max=16, s_min=0.9), gen, ver, params, n_max=16
    )
    assert bon.samples == 16 * len(Q)
    assert opt.samples < bon.samples and opt.tokens < bon.tokens
    for r in opt.results:
        assert r.reason in ("bound", "n_max") and r.n_star is not None
        assert r.chosen_sample_id is not None and r.chosen_sample_id.startswith(r.id + "/")
        assert r.correct == (r.answer == "42")


class _Flaky:
    """Every other sample fails; records which requests were closed early."""

    def __init__(self) -> None:
        self.inner = make_generator("sim", seed=1).backend
        self.closed: list[str] = []

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        try:
            async for s in self.inner.generate(request):
                idx = int(s.sample_id.rsplit("/", 1)[1])
                yield s if idx % 2 == 0 else GeneratedSample(
                    s.question_id, s.sample_id, "", None, 0, "error"
                )
                await asyncio.sleep(0)
        finally:
            self.closed.append(request.question_id)


async def test_failed_samples_are_replaced_and_streams_closed_on_stop() -> None:
    flaky = _Flaky()
    res, scored = await solve_question(
        Q[0], make_policy("bon", n_max=4), InProcessGenerator(flaky), make_verifier("confidence"),
        SamplingParams(seed=0),
    )
    assert res.samples_used == 4 and res.samples_failed >= 3 and len(scored) == 4
    assert flaky.closed  # every opened stream ended


def test_cli_solve_records_a_pool_that_replay_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qfile = tmp_path / "qs.jsonl"
    qfile.write_text("".join(json.dumps({"id": f"x{i}", "question": "?", "answer": "42"}) + "\n"
                             for i in range(4)))
    out, pool = tmp_path / "out.jsonl", tmp_path / "pool.jsonl.gz"
    argv = ["solve", str(qfile), "--generator", "sim", "--policy", "bon", "--n-max", "8",
            "--out", str(out), "--record", str(pool)]
    assert main(argv) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["x0", "x1", "x2", "x3"]
    assert all(r["samples_used"] == 8 for r in rows)
    assert "accuracy" in capsys.readouterr().out
    p = read_pool(str(pool))
    assert len(p.questions) == 4 and p.min_samples == 8
    # resume: nothing left to do
    assert main([*argv, "--resume"]) == 0
    assert len(read_pool(str(pool)).questions) == 4
    assert main(["replay", str(pool), "--orders", "2"]) == 0


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", str(tmp_path / "missing.jsonl"), "--generator", "sim"]) == 2
    assert "cannot open" in capsys.readouterr().err
    assert main(["solve", "--dataset", "gsm8k", "--generator", "sim", "--n-max", "0"]) == 2
    assert main(["solve", "--dataset", "gsm8k", "--generator", "sim", "--top-p", "2"]) == 2


@pytest.mark.model
def test_cli_solve_with_the_packaged_model(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    argv = ["solve", "--dataset", "gsm8k", "--limit", "2", "--model", "smollm2",
            "--n-max", "2", "--max-tokens", "24", "--out", str(out)]
    assert main(argv) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and all(1 <= r["samples_used"] <= 2 and r["tokens"] > 0 for r in rows)


def test_cli_eval_records_then_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    qfile = tmp_path / "qs.jsonl"
    qfile.write_text("".join(json.dumps({"id": f"e{i}", "question": "?", "answer": "42"}) + "\n"
                             for i in range(5)))
    pool = tmp_path / "eval.jsonl"
    argv = ["eval", str(qfile), "--generator", "sim", "--n-max", "8", "--orders", "3",
            "--pool", str(pool)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Best-of-N (BoN)" in text and "OptScale^0 (MLE)" in text
    assert read_pool(str(pool)).min_samples == 8


@pytest.mark.model
def test_cli_solve_optscalet_with_the_trained_predictor(tmp_path: Path) -> None:
    qfile = tmp_path / "qs.jsonl"
    qfile.write_text(json.dumps({"id": "t0", "question": "What is 2+2?", "answer": "42"}) + "\n")
    out = tmp_path / "out.jsonl"
    argv = ["solve", str(qfile), "--generator", "sim", "--policy", "optscalet",
            "--priors", "predictor", "--n-max", "8", "--out", str(out)]
    assert main(argv) == 0
    (row,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert row["policy"] == "optscalet" and row["n_star"] is not None
    assert main([*argv[:-2], "--priors", str(tmp_path / "none.json"), "--out", str(out)]) == 2
