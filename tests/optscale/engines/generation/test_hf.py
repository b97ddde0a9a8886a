"""transformers backend with the packaged SmolLM2-135M (GGUF dequantized once into the model
cache): batched decoding, ids, log-probs, abort; and the nucleus sampler on its own."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator

import pytest
import torch

from optscale.engines.generation.hf import Backend, sample_top_p
from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest
from optscale.types import SamplingParams
from tests.optscale.engines.generation.requests import collect, make_request


def test_sampler_greedy_at_zero_temperature() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 4.9]])
    g = torch.Generator().manual_seed(0)
    assert sample_top_p(logits, 0.0, 1.0, g).tolist() == [1, 0]


def test_sampler_never_leaves_the_nucleus() -> None:
    # probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps the first two only
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(4000, -1)
    g = torch.Generator().manual_seed(1)
    drawn = sample_top_p(logits, 1.0, 0.7, g)
    counts = torch.bincount(drawn, minlength=4).tolist()
    assert counts[2] == counts[3] == 0
    assert 0.55 < counts[0] / 4000 < 0.70  # 0.5 / 0.8 = 0.625 after renormalising


def test_sampler_keeps_the_top_token_when_top_p_is_tiny() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.5]]).expand(200, -1)
    g = torch.Generator().manual_seed(2)
    assert set(sample_top_p(logits, 1.0, 1e-6, g).tolist()) == {1}


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    b = Backend("smollm2", n_ctx=1024, n_threads=2, max_k=8, max_tokens=512)
    yield b
    b.close()


_req, _collect = make_request, collect


@pytest.mark.model
async def test_generates_k_samples_as_one_batch(backend: Backend) -> None:
    before = backend.tokens_total
    out = await _collect(backend, _req(k=3, first_index=2))
    assert sorted(s.sample_id for s in out) == ["q1/2", "q1/3", "q1/4"]
    for s in out:
        assert 1 <= s.completion_tokens <= 24 and s.finish_reason in ("stop", "length")
        assert s.text and s.mean_logprob is not None and s.mean_logprob < 0
        assert s.self_certainty is not None and s.self_certainty > 0
        assert s.step_logprobs and all(math.isfinite(x) and x <= 0 for x in s.step_logprobs)
        assert s.prompt_tokens > 5
    # every decoded token is accounted for: stop tokens are decoded but not part of the text
    n_stop = sum(s.finish_reason == "stop" for s in out)
    assert backend.tokens_total - before == sum(s.completion_tokens for s in out) + n_stop
    assert len({s.text for s in out}) > 1


@pytest.mark.model
async def test_same_seed_same_texts(backend: Backend) -> None:
    a = await _collect(backend, _req(k=2, seed=11))
    b = await _collect(backend, _req(k=2, seed=11))
    assert sorted(s.text for s in a) == sorted(s.text for s in b)


@pytest.mark.model
async def test_cancel_stops_the_engine_within_one_decode_step(backend: Backend) -> None:
    k = 4
    task = asyncio.create_task(_collect(backend, _req(k=k, max_tokens=400, seed=3)))
    while backend.tokens_total < 8 * k:
        await asyncio.sleep(0.01)
        if task.done():
            pytest.fail("finished before it could be cancelled")
    at_cancel = backend.tokens_total
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.get_running_loop().run_in_executor(backend._pool, lambda: None)
    assert backend.tokens_total - at_cancel <= k  # at most the step in progress, k rows
    assert backend.tokens_after_abort <= k


@pytest.mark.model
async def test_bad_request_is_rejected_before_the_engine(backend: Backend) -> None:
    before = backend.tokens_total
    with pytest.raises(InvalidArgumentError, match="k"):
        await _collect(backend, _req(k=9))
    with pytest.raises(InvalidArgumentError, match="prompt"):
        await _collect(backend, GenerateRequest("q", "  ", 1, SamplingParams(max_tokens=4)))
    assert backend.tokens_total == before
