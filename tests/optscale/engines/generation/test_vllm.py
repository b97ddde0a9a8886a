"""vLLM backend up to the engine boundary: an engine double with vLLM's AsyncLLM surface
(``generate(prompt, params, request_id)`` async iterator of deltas, ``abort(ids)``,
``get_tokenizer()``). The same backend on the real engine: ``tests/vllm_real/``."""

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
    """Streams each request as two deltas: tokens [7, 8], then [9] with the finish reason."""

    def __init__(self, delays: dict[int, float]) -> None:
        self.delays = delays
        self.aborted: list[str] = []
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.prompts: list[Any] = []

    async def generate(self, prompt: Any, params: dict[str, Any], request_id: str) -> Any:
        self.seen.append((request_id, params))
        self.prompts.append(prompt)
        i = int(request_id.rsplit("/", 1)[1])
        text = prompt["prompt"] if isinstance(prompt, dict) else prompt
        lp = [
            {7: SimpleNamespace(logprob=-0.1, decoded_token="a")},
            {8: SimpleNamespace(logprob=-0.3, decoded_token="\n\n")},
            {9: SimpleNamespace(logprob=-0.2, decoded_token="x")},
        ]
        first = SimpleNamespace(
            text=f"{text} ", token_ids=[7, 8], logprobs=lp[:2], finish_reason=None
        )
        yield SimpleNamespace(outputs=[first], prompt_token_ids=[1, 2], finished=False)
        await asyncio.sleep(self.delays.get(i, 0.0))
        last = SimpleNamespace(
            text=f"\\boxed{{{i}}}", token_ids=[9], logprobs=lp[2:], finish_reason="stop"
        )
        yield SimpleNamespace(outputs=[last], prompt_token_ids=[1, 2], finished=True)

    async def abort(self, request_ids: list[str]) -> None:
        self.aborted += request_ids


def _backend(engine: Engine, tokenizer: Any = None) -> Backend:
    return Backend(
        "m", engine=engine, tokenizer=tokenizer, sampling_params=lambda **kw: kw, max_k=8
    )


class Tokenizer:
    """A chat template that wraps the user turn; ids are character codes."""

    chat_template = "<u>{content}</u><a>"

    def apply_chat_template(
        self, messages: Any, *, tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert not tokenize and add_generation_prompt
        return f"<u>{messages[-1]['content']}</u><a>"

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        assert not add_special_tokens  # the template already has the special tokens
        return [ord(c) for c in text]


def _req(k: int) -> GenerateRequest:
    return GenerateRequest("q", "What?", k, SamplingParams(seed=10, max_tokens=64))


async def test_samples_arrive_as_they_finish_with_logprobs() -> None:
    eng = Engine({0: 0.05, 1: 0.0, 2: 0.02})
    out = [s async for s in _backend(eng).generate(_req(3))]
    assert [s.sample_id for s in out] == ["q/1", "q/2", "q/0"]
    assert [p["seed"] for _, p in sorted(eng.seen)] == [10, 11, 12]
    s = out[0]
    assert s.text == "What? \\boxed{1}" and s.answer == "1" and s.finish_reason == "stop"
    assert s.completion_tokens == 3 and s.prompt_tokens == 2
    assert s.mean_logprob == pytest.approx(-0.2) and len(s.step_logprobs) == 2
    assert eng.aborted == []
    assert eng.prompts == ["What?"] * 3  # no tokenizer: the text as is


async def test_prompt_goes_through_the_chat_template_as_token_ids() -> None:
    eng = Engine({})
    b = _backend(eng, Tokenizer())
    [s] = [s async for s in b.generate(_req(1))]
    [prompt] = eng.prompts
    assert prompt["prompt"] == "<u>What?</u><a>"
    assert prompt["prompt_token_ids"] == [ord(c) for c in "<u>What?</u><a>"]
    assert s.text.startswith("<u>What?</u><a>") and b.tokens_total == 3


async def test_a_tokenizer_without_chat_template_sends_the_text_as_is() -> None:
    class Plain(Tokenizer):
        chat_template = None

    eng = Engine({})
    _ = [s async for s in _backend(eng, Plain()).generate(_req(2))]
    assert eng.prompts == ["What?", "What?"]


async def test_the_engines_own_tokenizer_is_used_when_none_is_given() -> None:
    eng = Engine({})
    eng.get_tokenizer = Tokenizer  # type: ignore[attr-defined]
    b = Backend("m", engine=eng, sampling_params=lambda **kw: kw)
    _ = [s async for s in b.generate(_req(1))]
    assert eng.prompts[0]["prompt"] == "<u>What?</u><a>"


async def test_cancel_aborts_every_unfinished_request_in_the_engine() -> None:
    eng = Engine({0: 0.0, 1: 5.0, 2: 5.0})
    b = _backend(eng, Tokenizer())

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
