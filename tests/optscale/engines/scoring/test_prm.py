"""The Qwen2.5-Math-PRM protocol up to the model boundary: a small randomly initialised
token-classification model stands in for the 7B PRM (none ships on PyPI), with the SmolLM2
ChatML tokenizer plus the ``<extra_0>`` separator."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from optscale.aggregate import AGGREGATIONS
from optscale.engines.scoring.prm import (
    SEPARATOR,
    Backend,
    plan_windows,
    split_steps,
)
from optscale.errors import InvalidArgumentError
from optscale.models import resolve_dir
from optscale.types import GeneratedSample

QUESTION = "What is 12 * 3 + 4?"
RESPONSE = "First, 12 * 3 = 36.\n\nThen 36 + 4 = 40.\n\n\n\nSo the answer is \\boxed{40}."


def test_split_steps() -> None:
    assert split_steps(RESPONSE) == [
        "First, 12 * 3 = 36.",
        "Then 36 + 4 = 40.",
        "So the answer is \\boxed{40}.",
    ]
    assert split_steps("\n\n  \n\n") == []


@given(st.lists(st.integers(1, 60), min_size=1, max_size=30), st.integers(20, 200))
def test_windows_cover_every_step_once_in_order_within_budget(
    tokens: list[int], budget: int
) -> None:
    windows = plan_windows(tokens, budget)
    targets = [i for _, start, end in windows for i in range(start, end)]
    assert targets == list(range(len(tokens)))
    for ctx, start, end in windows:
        assert 0 <= ctx <= start < end
        lone = end - start == 1 and ctx == start
        assert sum(tokens[ctx:end]) <= budget or (lone and tokens[start] > budget)


def test_step_rewards_follow_the_model_card(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    b = Backend("tiny", loaded=loaded)
    [(score, rewards)] = b.score_texts([(QUESTION, RESPONSE)])
    # by hand, as the model card does it
    steps = split_steps(RESPONSE)
    messages = [
        {
            "role": "system",
            "content": "Please reason step by step, and put your final answer within \\boxed{}.",
        },
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
    with torch.inference_mode():
        probs = torch.softmax(model(input_ids=ids).logits, dim=-1)[0, :, 1]
    expected = probs[ids[0] == tok.convert_tokens_to_ids(SEPARATOR)].tolist()
    assert len(expected) == 3
    assert rewards == pytest.approx(expected, abs=1e-6)
    assert score == pytest.approx(sum(expected) / 3)


def test_padding_in_a_batch_changes_nothing(loaded: tuple[Any, Any]) -> None:
    b = Backend("tiny", loaded=loaded, batch_size=8)
    alone = b.score_texts([(QUESTION, RESPONSE)])
    longer = RESPONSE + "\n\n" + "Check: 40 - 4 = 36 and 36 / 3 = 12. " * 20
    together = b.score_texts([(QUESTION, longer), (QUESTION, RESPONSE)])
    assert together[1][1] == pytest.approx(alone[0][1], abs=1e-5)


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_aggregations(loaded: tuple[Any, Any], name: str) -> None:
    [(score, rewards)] = Backend("tiny", loaded=loaded, aggregation=name).score_texts(
        [(QUESTION, RESPONSE)]
    )
    want = {
        "mean": sum(rewards) / 3,
        "min": min(rewards),
        "last": rewards[-1],
        "product": math.prod(rewards),
    }[name]
    assert score == pytest.approx(want)


def test_long_traces_are_scored_in_windows_never_truncated(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    seen: list[int] = []

    class Recording(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, **kw: Any) -> Any:
            seen.append(int(kw["attention_mask"].sum(dim=1).max()))
            return self.inner(**kw)

    long_text = "\n\n".join(
        f"Step {i}: add {i} to the total, giving {i * (i + 1) // 2}." for i in range(60)
    )
    small = Backend("tiny", loaded=(Recording(), tok), max_length=160, batch_size=4)
    [(score, rewards)] = small.score_texts([(QUESTION, long_text)])
    assert len(rewards) == 60 and 0.0 <= score <= 1.0
    assert small.windows_run > 1 and max(seen) <= 160 and small.steps_clipped == 0
    # the first window's steps saw the same context as in one pass: same rewards
    big = Backend("tiny", loaded=loaded, max_length=4096)
    [(_, full)] = big.score_texts([(QUESTION, long_text)])
    assert big.windows_run == 1
    first = plan_windows(_step_tokens(tok, long_text), 160 - _overhead(small))[0]
    n = first[2] - first[1]
    assert rewards[:n] == pytest.approx(full[:n], abs=1e-5)
    # a single step longer than the whole context keeps its end and is counted
    huge = "word " * 400 + "so \\boxed{1}"
    [(_, r)] = small.score_texts([(QUESTION, huge)])
    assert len(r) == 1 and small.steps_clipped == 1


def _step_tokens(tok: Any, text: str) -> list[int]:
    return [len(tok.encode(s, add_special_tokens=False)) + 1 for s in split_steps(text)]


def _overhead(b: Backend) -> int:
    return len(b._ids(QUESTION, [""])) - 1


async def test_score_batch_and_bad_input(loaded: tuple[Any, Any]) -> None:
    b = Backend("tiny", loaded=loaded)
    s = GeneratedSample("q", "q/0", RESPONSE, "40", 30, "stop")
    [scored] = await b.score_batch([(QUESTION, s)])
    assert scored.sample is s and len(scored.step_scores) == 3 and 0 < scored.score < 1
    with pytest.raises(InvalidArgumentError, match="text"):
        await b.score_batch([(QUESTION, GeneratedSample("q", "q/1", " \n\n ", None, 1, "stop"))])
    with pytest.raises(InvalidArgumentError, match="aggregation"):
        Backend("tiny", loaded=loaded, aggregation="max")
    model, _ = loaded
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(resolve_dir("smollm2"))
    with pytest.raises(InvalidArgumentError, match="extra_0"):
        Backend("tiny", loaded=(model, plain))
