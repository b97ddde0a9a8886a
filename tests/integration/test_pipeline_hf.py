"""A smaller end-to-end run with a real model: the transformers (hf) generator on the packaged
SmolLM2-135M and the confidence verifier, through the real broker and redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from optscale.engines.generation.hf import Backend as Hf
from optscale.engines.scoring.confidence import Backend as Confidence
from optscale.v1 import events_pb2
from services.common.infra import Proc
from services.local import LocalPipeline

# the guards allow a loaded machine (HF decoding on shared cores); an idle one takes ~1 min
pytestmark = [pytest.mark.integration, pytest.mark.model, pytest.mark.timeout(900)]

QUESTIONS = {
    "hf-0": "What is 7 + 5? Put the final answer in \\boxed{}.",
    "hf-1": "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "hf-2": "What is 6 times 3?",
}


@pytest.fixture(scope="module")
def hf() -> Iterator[Hf]:
    b = Hf("smollm2", n_ctx=1024, n_threads=2, max_k=8, max_tokens=64)
    yield b
    b.close()


@pytest.fixture
async def stack(broker: Proc, redis_server: Proc, hf: Hf) -> AsyncIterator[LocalPipeline]:
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    async with LocalPipeline(f"127.0.0.1:{broker.port}", url, hf, Confidence()) as p:
        yield p


async def test_hf_questions_solved_end_to_end(stack: LocalPipeline, hf: Hf) -> None:
    assert stack.store is not None
    ids = list(QUESTIONS)
    await stack.submit(ids, "optscale0", 6, 0.5, max_tokens=48, texts=QUESTIONS)
    results = await stack.results(set(ids), "t-results-hf", wait_s=600)
    assert sorted(r.question_id for r in results) == sorted(ids)  # exactly one each
    for r in results:
        assert r.status == events_pb2.RESULT_STATUS_DONE
        assert 1 <= r.samples_used <= 6 and r.completion_tokens > 0
        sq = await stack.store.get(r.question_id)
        assert sq is not None and sq.status == "done"
        best = max(sq.observations, key=lambda o: o.score)
        assert r.chosen_sample_id == best.sample_id  # argmax-score candidate
    assert hf.tokens_total >= sum(r.completion_tokens for r in results)
