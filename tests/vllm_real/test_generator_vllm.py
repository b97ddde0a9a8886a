"""The vllm generator backend on the real AsyncLLM (vLLM's CPU build, SmolLM2-135M-Instruct).

One engine for the module. Each test checks something a broken backend gets wrong: engine
flags parsed by vLLM's parser (any order, typed), prompts through the model's chat template,
k seeded samples with log-probs, and cancel -> abort (the engine stops decoding them).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from transformers import AutoTokenizer

from optscale.engines.generation.vllm import Backend, parse_engine_args
from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest
from optscale.types import SamplingParams

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(900)]

# deliberately not in "--flag value" pairs only: a boolean flag between valued ones
ENGINE_ARGS = ["--max-num-seqs", "8", "--enforce-eager", "--max-model-len", "1024"]
QUESTION = "What is 2 + 3? Reply with the number only."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(smollm2_dir: str) -> AsyncIterator[Backend]:
    b = Backend(smollm2_dir, engine_args=ENGINE_ARGS, n_ctx=2048, max_k=8, max_tokens=512)
    b.watch_engine_tokens()
    yield b
    b.close()


def _req(qid: str, k: int, *, prompt: str = QUESTION, **params: Any) -> GenerateRequest:
    return GenerateRequest(qid, prompt, k, SamplingParams(**params))


def test_engine_args_are_parsed_by_vllm_in_any_order(smollm2_dir: str) -> None:
    m = smollm2_dir  # vLLM resolves the model while it builds the arguments
    a = ["--gpu-memory-utilization", "0.5", "--enforce-eager", "--max-num-seqs", "6"]
    b = ["--max-num-seqs", "6", "--enforce-eager", "--gpu-memory-utilization", "0.5"]
    for flags in (a, b, [*a, "--max-model-len", "512"]):
        args = parse_engine_args(m, flags, n_ctx=1024, seed=3)
        assert args.max_num_seqs == 6 and isinstance(args.max_num_seqs, int)
        assert args.enforce_eager is True
        assert args.gpu_memory_utilization == 0.5
        assert args.model == m and args.seed == 3
    assert parse_engine_args(m, [], n_ctx=1024, seed=0).max_model_len == 1024
    assert (
        parse_engine_args(m, [*a, "--max-model-len", "512"], n_ctx=1024, seed=0).max_model_len
        == 512
    )
    with pytest.raises(InvalidArgumentError, match="--no-such-flag"):
        parse_engine_args(m, ["--no-such-flag", "1"], n_ctx=1024, seed=0)
    with pytest.raises(InvalidArgumentError, match="max-num-seqs"):
        parse_engine_args(m, ["--max-num-seqs", "many"], n_ctx=1024, seed=0)


async def test_the_running_engine_has_the_flags(backend: Backend) -> None:
    cfg = backend.engine.vllm_config
    assert cfg.scheduler_config.max_num_seqs == 8
    assert cfg.model_config.enforce_eager is True
    assert cfg.model_config.max_model_len == 1024  # the flag, not the n_ctx default


async def test_prompts_go_through_the_models_chat_template(
    backend: Backend, smollm2_dir: str
) -> None:
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    messages = [{"role": "user", "content": QUESTION}]
    templated = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = len(tok(templated, add_special_tokens=False)["input_ids"])
    raw = len(tok(QUESTION)["input_ids"])
    [s] = [s async for s in backend.generate(_req("t", 1, temperature=0.0, max_tokens=48))]
    assert expected > raw + 5  # the template adds a system turn and role markers
    assert s.prompt_tokens == expected
    # an instruct model answering inside its chat turn ends the turn itself
    assert s.finish_reason == "stop", s.text
    assert "5" in s.text


async def test_k_seeded_samples_with_logprobs(backend: Backend) -> None:
    before, engine_before = backend.tokens_total, backend.engine_tokens_total
    params = {"temperature": 1.0, "max_tokens": 12, "seed": 7}
    first = [s async for s in backend.generate(_req("k", 3, prompt="Tell me a joke.", **params))]
    again = [s async for s in backend.generate(_req("k", 3, prompt="Tell me a joke.", **params))]
    assert sorted(s.sample_id for s in first) == ["k/0", "k/1", "k/2"]
    for s in first:
        assert 1 <= s.completion_tokens <= 12
        assert math.isfinite(s.mean_logprob) and s.mean_logprob < 0
    by_id = {s.sample_id: s.text for s in first}
    assert len(set(by_id.values())) > 1  # seed + i: different samples
    assert {s.sample_id: s.text for s in again} == by_id  # same seeds: same samples
    used = sum(s.completion_tokens for s in first + again)
    assert backend.tokens_total - before == used
    assert backend.engine_tokens_total - engine_before == used  # the engine-side count works


async def test_cancel_aborts_the_requests_in_the_engine(backend: Backend) -> None:
    story = "Write a very long story about a lighthouse keeper."
    before = backend.tokens_total
    after_before = backend.tokens_after_abort
    stream = backend.generate(_req("c", 2, prompt=story, temperature=1.0, max_tokens=400))
    task = asyncio.create_task(anext(stream))
    async with asyncio.timeout(300):
        while backend.tokens_total - before < 8:  # noqa: ASYNC110 - waits on a condition
            await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await task
    await stream.aclose()
    decoded = backend.tokens_total - before
    assert backend.engine.output_processor.get_num_unfinished_requests() == 0
    assert sorted(backend.aborted[-2:]) == ["c/0", "c/1"]
    # the engine has stepped many times since the abort: a fresh request ran to its end
    [s] = [s async for s in backend.generate(_req("p", 1, temperature=0.0, max_tokens=8))]
    assert s.completion_tokens >= 1
    after = backend.tokens_after_abort - after_before
    print(f"cancel: {decoded} tokens before abort, {after} after (engine side)")
    assert after <= 2 * 2  # at most the step(s) already in flight, per request
