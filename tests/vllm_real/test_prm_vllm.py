"""The PRM verifier on vLLM's real pooling runner (CPU build) against the transformers ``prm``
backend on the same tiny random Qwen2ForProcessRewardModel.

The two forward passes are computed independently — vLLM's Qwen2 and STEP pooler in its
engine processes, transformers' ``Qwen2Model`` plus the score head in this process
(``prm_reference.py``) — on 24 multi-step traces, 9 of them longer than the 256-token
context (windowed) and one with a single step longer than any window (clipped). Both run in
float32; they must agree within ``TOL`` on every step reward and every score."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from optscale.engines.scoring.prm import Backend as Prm
from optscale.engines.scoring.prm import split_steps
from optscale.engines.scoring.vllm_prm import Backend as VllmPrm
from optscale.engines.scoring.vllm_prm import make_llm
from optscale.errors import InvalidArgumentError
from tests.vllm_real.prm_reference import load, traces

pytestmark = pytest.mark.timeout(900)  # engine start included (slow when the cores are shared)
MAX_LENGTH = 256  # the engine's max_model_len and both backends' window size
TOL = 1e-5  # absolute, on P(positive) per step; float32 on both sides (measured 1.2e-7)
TRACES = traces(24)


@pytest.fixture(scope="module")
def vllm_prm(tiny_prm_dir: str) -> Iterator[VllmPrm]:
    backend = VllmPrm(
        tiny_prm_dir,
        max_length=MAX_LENGTH,
        batch_size=16,
        engine_args="--dtype float32 --enforce-eager --max-num-seqs 16 --seed 0",
    )
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def reference(tiny_prm_dir: str) -> Prm:
    return Prm(tiny_prm_dir, max_length=MAX_LENGTH, batch_size=4, loaded=load(tiny_prm_dir))


@pytest.fixture(scope="module")
def both(vllm_prm: VllmPrm, reference: Prm) -> tuple[Any, Any]:
    return vllm_prm.score_texts(TRACES), reference.score_texts(TRACES)


def test_an_unknown_engine_flag_is_a_clear_error(tiny_prm_dir: str) -> None:
    with pytest.raises(InvalidArgumentError, match="--no-such-flag"):
        make_llm(tiny_prm_dir, MAX_LENGTH, "--enforce-eager --no-such-flag 1")


def test_the_traces_need_windows(reference: Prm) -> None:
    lengths = [len(reference._ids(q, split_steps(t))) for q, t in TRACES]
    assert sum(n > MAX_LENGTH for n in lengths) >= 8
    assert all(len(split_steps(t)) >= 3 for _, t in TRACES)


def test_step_rewards_agree_with_transformers(both: tuple[Any, Any]) -> None:
    got, want = both
    worst = 0.0
    for (q, t), (score, steps), (ref_score, ref_steps) in zip(TRACES, got, want, strict=True):
        assert len(steps) == len(ref_steps) == len(split_steps(t)), q
        worst = max(
            [worst, abs(score - ref_score)]
            + [abs(a - b) for a, b in zip(steps, ref_steps, strict=True)]
        )
    print(f"max |vllm - transformers| over {len(TRACES)} traces: {worst:.2e}")
    assert worst <= TOL
    rewards = [r for _, steps in got for r in steps]
    assert max(rewards) - min(rewards) > 0.05  # the rewards vary: agreement is not trivial


def test_long_traces_went_through_windows_and_clipping(
    both: tuple[Any, Any], vllm_prm: VllmPrm, reference: Prm
) -> None:
    assert vllm_prm.windows_run == reference.windows_run > len(TRACES)
    assert vllm_prm.steps_clipped == reference.steps_clipped == 1


def test_step_tag_id_is_configurable(vllm_prm: VllmPrm, tiny_prm_dir: str) -> None:
    tok = vllm_prm._llm.get_tokenizer()
    tag = tok.convert_tokens_to_ids("<extra_0>")
    assert vllm_prm.step_tag_id == tag
    explicit = VllmPrm(tiny_prm_dir, max_length=MAX_LENGTH, step_tag_id=tag, llm=vllm_prm._llm)
    assert explicit.score_texts(TRACES[:2]) == vllm_prm.score_texts(TRACES[:2])
    # another one-token tag: the protocol writes it after every step, the pooler reads it
    other = tok.convert_tokens_to_ids("<|endoftext|>")
    retagged = VllmPrm(tiny_prm_dir, max_length=MAX_LENGTH, step_tag_id=other, llm=vllm_prm._llm)
    [(_, steps)] = retagged.score_texts(TRACES[1:2])
    assert len(steps) == len(split_steps(TRACES[1][1]))
    with pytest.raises(InvalidArgumentError, match="step_tag_id"):
        VllmPrm(tiny_prm_dir, step_tag_id=len(tok) + 5, llm=vllm_prm._llm)


async def test_score_batch_from_the_event_loop(vllm_prm: VllmPrm, both: tuple[Any, Any]) -> None:
    from optscale.types import GeneratedSample

    q, text = TRACES[1]
    sample = GeneratedSample(
        q, f"{q}/0", text, answer=None, completion_tokens=10, finish_reason="stop"
    )
    [scored] = await vllm_prm.score_batch([(q, sample)])
    assert scored.score == pytest.approx(both[1][1][0], abs=TOL)
