"""End to end on the local stack (Tansu broker + redis-server, the in-process pipeline of
``services.local``) with the generator on the real vLLM ``AsyncLLM`` (SmolLM2-135M-Instruct)
and the verifier on vLLM's real pooling runner (the tiny random Qwen2 PRM).

Two engines run at once here (the pipeline needs both); this is the only module that does.
Questions under OptScale^0 are answered with the PRM's scores; a question under adaptive
consistency with 8 samples in flight stops on its first answer while samples are still
decoding, and the stop aborts those in the generator's engine."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from optscale.engines.generation.vllm import Backend as VllmGenerator
from optscale.engines.scoring.vllm_prm import Backend as VllmPrm
from optscale.v1 import events_pb2
from services.common import kafka
from services.common.infra import Proc, start_broker, start_redis
from services.local import LocalPipeline

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(900),
]

SCORED = {  # OptScale^0 on the PRM's scores
    "v-0": "What is 7 + 5? Put the final answer in \\boxed{}.",
    "v-1": "Tom has 3 apples and buys 4 more. How many apples does he have? Answer in \\boxed{}.",
    "v-2": "What is 6 times 3? Put the final answer in \\boxed{}.",
}
AGREE = {"v-stop": "What is 2 + 3? Write \\boxed{5} first, then explain at length why."}


@pytest.fixture(scope="module")
def broker() -> Iterator[Proc]:
    p = start_broker()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Proc]:
    p = start_redis()
    yield p
    p.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def generator(smollm2_dir: str) -> AsyncIterator[VllmGenerator]:
    args = ["--enforce-eager", "--max-num-seqs", "8"]
    g = VllmGenerator(smollm2_dir, engine_args=args, n_ctx=1024, max_k=8, max_tokens=256)
    g.watch_engine_tokens()
    yield g
    g.close()


@pytest.fixture(scope="module")
def verifier(tiny_prm_dir: str) -> Iterator[VllmPrm]:
    v = VllmPrm(tiny_prm_dir, max_length=512, engine_args="--dtype float32 --enforce-eager")
    yield v
    v.close()


async def submit(
    p: LocalPipeline, texts: dict[str, str], policy: str, n_max: int, **options: object
) -> None:
    for q, text in texts.items():
        ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
        ev.submitted.text = text
        ev.submitted.policy.policy = policy
        ev.submitted.policy.n_max = n_max
        ev.submitted.policy.s_min = 0.5
        ev.submitted.policy.options_json = json.dumps(options) if options else ""
        ev.submitted.sampling.max_tokens = 160
        await p.producer.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())
    await p.producer.flush()


def finished_in_engine(generator: VllmGenerator) -> set[str]:
    """Sample ids whose engine request finished on its own (stop or length), as the engine's
    outputs reach ``AsyncLLM``'s output processor (a vLLM 0.32 internal, tapped like
    ``watch_engine_tokens``)."""
    from vllm.v1.engine import FinishReason

    proc = generator.engine.output_processor
    inner = proc.process_outputs
    done: set[str] = set()

    def tap(outputs: Any, *args: Any, **kwargs: Any) -> Any:
        for o in outputs:
            state = proc.request_states.get(o.request_id)
            if state is not None and o.finish_reason in (FinishReason.STOP, FinishReason.LENGTH):
                done.add(state.external_req_id)
        return inner(outputs, *args, **kwargs)

    proc.process_outputs = tap
    return done


async def test_questions_answered_and_a_stop_aborts_in_engine(
    broker: Proc, redis_server: Proc, generator: VllmGenerator, verifier: VllmPrm
) -> None:
    natural = finished_in_engine(generator)
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    async with LocalPipeline(f"127.0.0.1:{broker.port}", url, generator, verifier) as p:
        assert p.store is not None and p.generator is not None
        await submit(p, SCORED, "optscale0", 6)
        # adaptive consistency with 8 samples in flight and threshold 0.5 stops at the first
        # scored sample with an answer, while the others still decode (with batch 4 and 0.7 a
        # run whose answers disagreed used all 8 samples, each finished before the stop)
        await submit(p, AGREE, "asc", 16, batch=8, threshold=0.5)
        ids = set(SCORED) | set(AGREE)
        results = await p.results(ids, "t-results-vllm", wait_s=600)
        assert sorted(r.question_id for r in results) == sorted(ids)  # exactly one each
        scores = []
        for r in results:
            assert r.status == events_pb2.RESULT_STATUS_DONE, r
            sq = await p.store.get(r.question_id)
            assert sq is not None and sq.status == "done"
            assert 1 <= r.samples_used == sq.n_scored <= (6 if r.question_id in SCORED else 16)
            scores += [o.score for o in sq.observations]
            if r.question_id in SCORED:
                best = max(sq.observations, key=lambda o: o.score)
                assert r.chosen_sample_id == best.sample_id  # argmax of the PRM's scores
        assert all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) > 1
        assert verifier.windows_run >= len(scores)
        # the adaptive-consistency stop cut samples that were decoding: aborted in the engine
        cut = [s for s in generator.aborted if s.startswith("v-stop/") and s not in natural]
        assert cut, f"no v-stop sample was decoding at the stop: {generator.aborted}, {natural}"
        assert p.generator.aborted >= len(cut)
        deadline = time.monotonic() + 60
        while generator.engine.output_processor.get_num_unfinished_requests():
            assert time.monotonic() < deadline, "engine still has unfinished requests"
            await asyncio.sleep(0.05)
        print(
            f"\nresults {len(results)}, samples scored {len(scores)}, aborted {generator.aborted},"
            f" engine tokens after abort {generator.tokens_after_abort}"
            f" of {generator.engine_tokens_total}"
        )
