"""llama.cpp backend with the packaged SmolLM2-135M: real decoding, ids, log-probs, abort, and
the k samples decoded as parallel sequences (deterministic, equal to one at a time)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest

from optscale.engines.generation.llamacpp import Backend
from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest
from optscale.types import SamplingParams
from tests.optscale.engines.generation.requests import collect, make_request

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    b = Backend("smollm2", n_ctx=1024, n_threads=2, max_k=8, max_tokens=512)
    yield b
    b.close()


_req, _collect = make_request, collect


async def test_generates_k_samples_with_ids_tokens_and_logprobs(backend: Backend) -> None:
    out = await _collect(backend, _req(k=2, first_index=3))
    assert [s.sample_id for s in out] == ["q1/3", "q1/4"]
    for s in out:
        assert 1 <= s.completion_tokens <= 24 and s.finish_reason in ("stop", "length")
        assert s.text and s.mean_logprob is not None and s.mean_logprob < 0
        assert s.self_certainty is not None and s.self_certainty > 0
        assert s.step_logprobs and all(math.isfinite(x) and x <= 0 for x in s.step_logprobs)
        assert s.prompt_tokens > 5


async def test_same_seed_same_text_different_seed_differs(backend: Backend) -> None:
    a = await _collect(backend, _req(k=1, seed=11))
    b = await _collect(backend, _req(k=1, seed=11))
    c = await _collect(backend, _req(k=1, seed=12, max_tokens=48))
    assert a[0].text == b[0].text
    assert c[0].text != a[0].text


async def test_cancel_stops_the_engine_within_one_decode_step(backend: Backend) -> None:
    req = _req(k=4, max_tokens=400, seed=3)
    task = asyncio.create_task(_collect(backend, req))
    while backend.tokens_total < 8 or task.done():
        await asyncio.sleep(0.01)
        if task.done():
            pytest.fail("finished before it could be cancelled")
    at_cancel = backend.tokens_total
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # the worker thread is idle once a no-op queued behind the aborted decode has run
    await asyncio.get_running_loop().run_in_executor(backend._pool, lambda: None)
    assert backend.tokens_total - at_cancel <= 2  # the step in progress when cancel() ran
    assert backend.tokens_after_abort <= 1


async def test_closing_the_stream_starts_no_further_sample(backend: Backend) -> None:
    stream = backend.generate(_req(k=4, max_tokens=16))
    first = await anext(stream)
    before = backend.tokens_total
    await stream.aclose()
    await asyncio.sleep(0.2)
    assert first.sample_id == "q1/0" and backend.tokens_total == before


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (GenerateRequest("q", "", 1, SamplingParams()), "prompt"),
        (GenerateRequest("q", "x" * 40_000, 1, SamplingParams()), "prompt"),
        (GenerateRequest("q", "hi", 0, SamplingParams()), "k"),
        (GenerateRequest("q", "hi", 9, SamplingParams()), "k"),
        (GenerateRequest("", "hi", 1, SamplingParams()), "question_id"),
        (GenerateRequest("q", "hi", 1, SamplingParams(temperature=-1)), "temperature"),
        (GenerateRequest("q", "hi", 1, SamplingParams(top_p=0)), "top_p"),
        (GenerateRequest("q", "hi", 1, SamplingParams(max_tokens=10_000)), "max_tokens"),
    ],
)
async def test_bad_requests_name_the_field(
    backend: Backend, req: GenerateRequest, field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await _collect(backend, req)
    assert err.value.field == field


# --- k samples as parallel sequences of one context -------------------------------------------

PROMPTS = (
    "What is 2 + 3?",
    "Explain why the sky is blue in two sentences.",
    "Write a haiku about the sea.",
)


def _ask(prompt: str, k: int, temperature: float, max_tokens: int, seed: int = 5) -> Any:
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    return GenerateRequest("q1", prompt, k, params)


def _key(s: Any) -> tuple[Any, ...]:
    return (s.sample_id, s.text, s.completion_tokens, s.finish_reason)


async def test_k_above_1_decodes_as_parallel_sequences_k_1_alone(backend: Backend) -> None:
    before = backend.batched_samples
    out = await _collect(backend, _req(k=3, max_tokens=16))
    assert [s.sample_id for s in out] == ["q1/0", "q1/1", "q1/2"]
    assert backend.batched_samples == before + 3
    await _collect(backend, _req(k=1, max_tokens=16))
    assert backend.batched_samples == before + 3


async def test_batched_same_request_twice_same_texts(backend: Backend) -> None:
    req = _ask(PROMPTS[1], k=4, temperature=0.7, max_tokens=40, seed=21)
    a = await _collect(backend, req)
    b = await _collect(backend, req)
    assert [_key(s) for s in a] == [_key(s) for s in b]
    assert [s.mean_logprob for s in a] == [s.mean_logprob for s in b]
    assert len({s.text for s in a}) > 1  # the k samples have their own seeds


@pytest.mark.parametrize("temperature", [0.0, 0.7])
async def test_batched_sequences_equal_one_at_a_time_samples(temperature: float) -> None:
    """Same seeds, same sampler chain, each sequence attends over its own KV stream, and
    SmolLM2's Q4_1 matmul gives a row the same logits alone or among others: the batched
    samples are the one-at-a-time samples (required at temperature 0; 0.7 holds too)."""
    b = Backend("smollm2", n_ctx=1024, n_threads=2, max_k=8, max_tokens=512)
    try:
        for prompt in PROMPTS:
            req = _ask(prompt, k=4, temperature=temperature, max_tokens=48)
            b.n_parallel = 1
            alone = await _collect(b, req)
            b.n_parallel = 8
            before = b.batched_samples
            batched = await _collect(b, req)
            assert b.batched_samples == before + 4
            assert [_key(s) for s in batched] == [_key(s) for s in alone]
            for x, y in zip(batched, alone, strict=True):
                assert x.mean_logprob == pytest.approx(y.mean_logprob, rel=1e-6)
                assert x.self_certainty == pytest.approx(y.self_certainty, rel=1e-6)
                assert x.step_logprobs == pytest.approx(y.step_logprobs, rel=1e-6)
    finally:
        b.close()


async def test_fewer_sequences_fit_waiting_samples_take_freed_ones(backend: Backend) -> None:
    req = _ask(PROMPTS[0], k=5, temperature=0.7, max_tokens=40, seed=3)
    full = await _collect(backend, req)
    n_prompt = len(backend.prompt_tokens(req.prompt))
    saved = backend.batch_n_ctx
    backend.batch_n_ctx = 3 * 256  # the prompt's sequence and two samples' (256 cells each)
    try:
        assert n_prompt + 40 - 1 <= 256 and backend.batch_width(5, n_prompt, req.params) == 2
        before = backend.batched_samples
        narrow = await _collect(backend, req)
    finally:
        backend.batch_n_ctx = saved
    assert backend.batched_samples == before + 5
    assert [_key(s) for s in narrow] == [_key(s) for s in full]


async def test_too_small_for_two_sequences_falls_back_and_logs(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    saved = backend.batch_n_ctx
    backend.batch_n_ctx = 2 * 256
    try:
        before = backend.batched_samples
        with caplog.at_level(logging.WARNING, logger="optscale.engines.generation.llamacpp"):
            out = await _collect(backend, _req(k=2, max_tokens=8))
    finally:
        backend.batch_n_ctx = saved
    assert [s.sample_id for s in out] == ["q1/0", "q1/1"]
    assert backend.batched_samples == before
    assert "one at a time" in caplog.text and "batch_n_ctx=512" in caplog.text


async def test_the_next_request_for_the_prompt_skips_its_prefill(backend: Backend) -> None:
    await _collect(backend, _ask(PROMPTS[2], k=2, temperature=0.7, max_tokens=8))
    assert backend._par is not None
    prefilled = backend._par.prefilled
    await _collect(backend, _ask(PROMPTS[2], k=3, temperature=0.7, max_tokens=8, seed=9))
    assert backend._par.prefilled == prefilled


async def test_cancel_stops_every_sequence_and_frees_them(backend: Backend) -> None:
    from llama_cpp import llama_cpp as ll

    task = asyncio.create_task(_collect(backend, _req(k=6, max_tokens=400, seed=4)))
    start = backend.tokens_total
    while backend.tokens_total < start + 24:
        await asyncio.sleep(0.01)
        if task.done():
            pytest.fail("finished before it could be cancelled")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.get_running_loop().run_in_executor(backend._pool, lambda: None)
    stopped = backend.tokens_total
    await asyncio.sleep(0.3)
    assert backend.tokens_total == stopped
    par = backend._par
    assert par is not None
    mem = ll.llama_get_memory(par.ctx)
    assert ll.llama_memory_seq_pos_max(mem, 0) >= 0  # the prompt stays for the next request
    assert all(ll.llama_memory_seq_pos_max(mem, s) == -1 for s in range(1, par.n_seq + 1))
