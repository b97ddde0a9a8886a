"""The synthetic generator: deterministic, question-specific, cancellable."""

from __future__ import annotations

import asyncio
import math

import pytest

from optscale.engines.generation.sim import Backend
from optscale.ports import GenerateRequest
from optscale.types import SamplingParams


async def _collect(b: Backend, req: GenerateRequest) -> list:
    return [s async for s in b.generate(req)]


async def test_deterministic_per_sample_id() -> None:
    req = GenerateRequest("q", "p", 5, SamplingParams())
    a = await _collect(Backend(seed=1), req)
    b = await _collect(Backend(seed=1), req)
    c = await _collect(Backend(seed=2), req)
    assert [s.mean_logprob for s in a] == [s.mean_logprob for s in b]
    assert [s.mean_logprob for s in a] != [s.mean_logprob for s in c]
    assert all(s.mean_logprob is not None and s.mean_logprob <= 0 for s in a)
    assert all(s.answer is not None and s.completion_tokens >= 1 for s in a)


async def test_quality_follows_the_question_distribution() -> None:
    b = Backend(seed=0)
    mu, sigma = b.question_params("qq")
    out = await _collect(b, GenerateRequest("qq", "p", 64, SamplingParams()))
    qs = [math.exp(s.mean_logprob or 0.0) for s in out]
    assert abs(sum(qs) / len(qs) - mu) < 4 * sigma


async def test_cancel_stops_at_once() -> None:
    b = Backend(token_delay=0.01)
    task = asyncio.create_task(_collect(b, GenerateRequest("q", "p", 8, SamplingParams())))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.tokens_total < 8 * 1000
