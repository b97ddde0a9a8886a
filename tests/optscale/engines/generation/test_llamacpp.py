"""llama.cpp backend with the packaged SmolLM2-135M: real decoding, ids, log-probs, abort."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator

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
