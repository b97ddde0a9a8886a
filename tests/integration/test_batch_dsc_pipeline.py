"""Batch DSC end to end on the real broker (Tansu) and a real redis-server, with two
controllers sharing the batch's board (``ob:{<batch>}:dsc``): a ranked batch whose easy half
answers the same every time and whose hard half never agrees. Every easy question stops as
``easy`` with at most a window of samples, every hard one runs to N_max, and the board holds the
boundary between them and the pre-allocation the last hard question left. The same batch
through ``optscale submit --policy dsc --priors FILE`` (the CLI ranks it by the priors)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from optscale.engines.generation.sim import Backend as Sim
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample
from optscale.v1 import events_pb2
from services.common import kafka
from services.common.infra import Proc
from services.local import LocalPipeline
from tests.integration.conftest import local_pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EASY = [f"dsc-e{i}" for i in range(4)]
HARD = [f"dsc-h{i}" for i in range(4)]
WINDOW, N_MAX = 3, 6


class ScriptedAnswers(Sim):
    """The sim generator, with answers by question: ``dsc-e*`` always 42, ``dsc-h*`` the
    sample's index (no two samples of a hard question agree)."""

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        async for s in super().generate(request):
            index = s.sample_id.rsplit("/", 1)[1]
            ans = "42" if "-e" in s.question_id else index
            yield dataclasses.replace(s, answer=ans, text=f"so \\boxed{{{ans}}}")


async def test_two_controllers_run_a_batch_under_dsc(broker: Proc, redis_server: Proc) -> None:
    async with local_pipeline(broker, redis_server, ScriptedAnswers(seed=3)) as p:
        await p.start_controller()  # a second controller: the board is shared through Redis
        ranked = EASY + HARD
        for rank, q in enumerate(ranked):
            ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
            s = ev.submitted
            s.text, s.reference_answer = f"question {q}", "42"
            s.policy.policy, s.policy.n_max = "dsc", N_MAX
            opts = {"dsc_batch": "dscB", "rank": rank, "batch_size": len(ranked)}
            s.policy.options_json = json.dumps({**opts, "dsc_window": WINDOW})
            s.sampling.max_tokens = 256
            await p.producer.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())
        await p.producer.flush()
        results = {r.question_id: r for r in await p.results(set(ranked), "t-dsc-results")}
        board = await p.redis.hgetall("ob:{dscB}:dsc")
    _check(results, board)


def _check(results: dict[str, events_pb2.Result], board: dict[str, str]) -> None:
    ranked = EASY + HARD
    assert set(results) == set(ranked)
    for q in EASY:
        r = results[q]
        assert (r.stop_reason, r.answer, r.correct) == ("easy", "42", True), q
        assert 1 <= r.samples_used <= WINDOW, q
    for q in HARD:
        assert (results[q].stop_reason, results[q].samples_used) == ("n_max", N_MAX), q
    # the boundary: the hardest easy rank can only have been found easy by its own probe, the
    # easiest hard rank hard by its own: the board ends exactly between the halves
    assert (int(board["easy_max"]), int(board["hard_min"])) == (len(EASY) - 1, len(EASY))
    assert int(board["alloc"]) == N_MAX  # the count the last hard question needed
    frozen = {k: int(v) for k, v in board.items() if k.startswith("a:")}
    assert set(frozen) == {f"a:{r}" for r in range(int(board["hard_min"]), len(ranked))}


async def _cli_submit(p: LocalPipeline, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "optscale", "submit", *args, "--bootstrap", p.bootstrap,
        "--redis-url", p.redis_url, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_optscale_submit_ranks_the_batch_by_its_priors(
    broker: Proc, redis_server: Proc, tmp_path: Path
) -> None:
    ranked = EASY + HARD
    questions = tmp_path / "q.jsonl"
    shuffled = [ranked[i] for i in (5, 0, 7, 2, 4, 1, 6, 3)]  # file order is not rank order
    questions.write_text(
        "".join(json.dumps({"id": q, "question": f"question {q}", "answer": "42"}) + "\n"
                for q in shuffled)
    )  # fmt: skip
    priors = tmp_path / "priors.json"  # the easy half is predicted easier (higher mu_bar)
    priors.write_text(json.dumps({q: [0.9 - 0.05 * r, 0.1] for r, q in enumerate(ranked)}))
    async with local_pipeline(broker, redis_server, ScriptedAnswers(seed=4)) as p:
        out = await _cli_submit(
            p, str(questions), "--policy", "dsc", "--batch-id", "dscC",
            "--priors", str(priors), "--n-max", str(N_MAX), "--max-tokens", "256",
            "--options", json.dumps({"dsc_window": WINDOW}),
        )  # fmt: skip
        assert out.strip() == f"batch dscC {len(ranked)} questions"
        results = {r.question_id: r for r in await p.results(set(ranked), "t-dsc-cli")}
        board = await p.redis.hgetall("ob:{dscC}:dsc")
    _check(results, board)
