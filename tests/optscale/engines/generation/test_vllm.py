"""vLLM backend up to the engine boundary (no GPU here): an engine double with vLLM's
AsyncLLM surface (``generate(prompt, params, request_id)`` async iterator, ``abort(ids)``)."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from optscale.engines.generation.vllm import Backend
from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest
from optscale.types import SamplingParams


class Engine:
    def __init__(self, delays: dict[int, float]) -> None:
        self.delays = delays
        self.aborted: list[str] = []
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def generate(self, prompt: str, params: dict[str, Any], request_id: str) -> Any:
        self.seen.append((request_id, params))
        i = int(request_id.rsplit("/", 1)[1])
        await asyncio.sleep(self.delays.get(i, 0.0))
        lp = [
            {7: SimpleNamespace(logprob=-0.1, decoded_token="a")},
            {8: SimpleNamespace(logprob=-0.3, decoded_token="\n\n")},
            {9: SimpleNamespace(logprob=-0.2, decoded_token="x")},
        ]
        out = SimpleNamespace(
            text=f"{prompt} \\boxed{{{i}}}", token_ids=[7, 8, 9], logprobs=lp, finish_reason="stop"
        )
        yield SimpleNamespace(outputs=[out], prompt_token_ids=[1, 2], finished=True)

    async def abort(self, request_ids: list[str]) -> None:
        self.aborted += request_ids


def _backend(engine: Engine) -> Backend:
    return Backend("m", engine=engine, sampling_params=lambda **kw: kw, max_k=8)


def _req(k: int) -> GenerateRequest:
    return GenerateRequest("q", "What?", k, SamplingParams(seed=10, max_tokens=64))


async def test_samples_arrive_as_they_finish_with_logprobs() -> None:
    eng = Engine({0: 0.05, 1: 0.0, 2: 0.02})
    out = [s async for s in _backend(eng).generate(_req(3))]
    assert [s.sample_id for s in out] == ["q/1", "q/2", "q/0"]
    assert [p["seed"] for _, p in sorted(eng.seen)] == [10, 11, 12]
    s = out[0]
    assert s.answer == "1" and s.completion_tokens == 3 and s.prompt_tokens == 2
    assert s.mean_logprob == pytest.approx(-0.2) and len(s.step_logprobs) == 2
    assert eng.aborted == []


async def test_cancel_aborts_every_unfinished_request_in_the_engine() -> None:
    eng = Engine({0: 0.0, 1: 5.0, 2: 5.0})
    b = _backend(eng)

    async def consume() -> list[Any]:
        return [s async for s in b.generate(_req(3))]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert sorted(eng.aborted) == ["q/1", "q/2"]


async def test_closing_the_stream_aborts_the_rest_and_bad_input_fails() -> None:
    eng = Engine({1: 5.0})
    stream = _backend(eng).generate(_req(2))
    first = await anext(stream)
    await stream.aclose()
    assert first.sample_id == "q/0" and eng.aborted == ["q/1"]
    with pytest.raises(InvalidArgumentError):
        _ = [s async for s in _backend(eng).generate(_req(9))]
