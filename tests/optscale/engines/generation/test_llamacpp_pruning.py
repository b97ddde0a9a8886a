"""Prefix pruning in llama.cpp's parallel decoder, with the packaged SmolLM2-135M: a step judge
that aborts sequence 1 at its first step end stops that sequence there (its tokens so far, no
answer, ``"pruned"``) while the other sequences finish exactly as without the judge."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from optscale.engines.generation.llamacpp import Backend
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample, SamplingParams

pytestmark = pytest.mark.model

# a prompt SmolLM2 answers in several blank-line-separated steps within 48 tokens (seed 1)
PROMPT = (
    "Solve step by step, one short paragraph per step: Tom has 3 apples and buys 4 more. "
    "How many apples does he have?"
)


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    b = Backend("smollm2", n_ctx=1024, n_threads=2, max_k=8, max_tokens=512)
    yield b
    b.close()


class AbortAtFirstStep:
    """Abort one sample at its first step end; record every call."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.calls: list[tuple[str, int]] = []

    def __call__(self, sample_id: str, step_logprobs: Sequence[float]) -> bool:
        self.calls.append((sample_id, len(step_logprobs)))
        return sample_id == self.target


async def _run(
    backend: Backend, judge: AbortAtFirstStep | None
) -> tuple[list[GeneratedSample], int]:
    req = GenerateRequest("q1", PROMPT, 3, SamplingParams(max_tokens=48, seed=1), step_judge=judge)
    before = backend.tokens_total
    out = [s async for s in backend.generate(req)]
    return out, backend.tokens_total - before


async def test_a_judged_out_sequence_stops_at_its_step_end_and_the_others_finish(
    backend: Backend,
) -> None:
    plain, plain_tokens = await _run(backend, None)
    full = {s.sample_id: s for s in plain}
    cut_at = full["q1/1"].step_token_ends[0]
    assert cut_at < full["q1/1"].completion_tokens  # precondition: a step end before the end

    judge = AbortAtFirstStep("q1/1")
    judged, judged_tokens = await _run(backend, judge)
    got = {s.sample_id: s for s in judged}
    assert judged[0].sample_id == "q1/1"  # with a judge, samples come as they finish
    pruned = got["q1/1"]
    assert pruned.finish_reason == "pruned" and pruned.answer is None
    assert pruned.completion_tokens == cut_at and pruned.step_token_ends == (cut_at,)
    assert full["q1/1"].text.startswith(pruned.text)
    assert pruned.step_logprobs == pytest.approx(full["q1/1"].step_logprobs[:1])
    for sid in ("q1/0", "q1/2"):  # the others decode on, as without the judge
        assert got[sid].text == full[sid].text
        assert got[sid].finish_reason == full[sid].finish_reason
    # sequence 1 decoded nothing after its step end (the others' tokens are unchanged)
    assert plain_tokens - judged_tokens == full["q1/1"].completion_tokens - cut_at + (
        full["q1/1"].finish_reason == "stop"
    )
    assert ("q1/1", 1) in judge.calls and ("q1/1", 2) not in judge.calls


async def test_one_at_a_time_decoding_prunes_at_the_same_step_end(backend: Backend) -> None:
    """k == 1 decodes alone (``Llama.generate``); sample 1 of the batch above (seed 1 + 1)."""
    plain, _ = await _run(backend, None)
    cut_at = plain[1].step_token_ends[0]
    params = SamplingParams(max_tokens=48, seed=2)
    req = GenerateRequest(
        "q1", PROMPT, 1, params, first_index=1, step_judge=AbortAtFirstStep("q1/1")
    )
    (alone,) = [s async for s in backend.generate(req)]
    assert alone.finish_reason == "pruned" and alone.answer is None
    assert alone.completion_tokens == cut_at and plain[1].text.startswith(alone.text)
