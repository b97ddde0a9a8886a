"""Process reward model scoring with the Qwen2.5-Math-PRM-7B protocol (GPU pools).

Protocol (model card): the response is split into steps on blank lines; the conversation is
system + user question + assistant steps, each step followed by ``<extra_0>``; the model's
2-class logits at each separator give the step reward P(positive). The sample's score
aggregates the step rewards: ``mean`` (default, as in the paper), ``min``, ``last`` or
``product``.

Traces longer than the model context (``max_length`` tokens) are never silently truncated.
Rule: the steps are scored in windows. Each window holds the prompt, then as many whole
preceding steps as fit as context, then the target steps (at most half the step budget);
only the targets' separators are read. Every step gets exactly one reward, computed with as
much of its preceding reasoning as fits. A single step longer than the whole budget keeps its
last tokens (the end of the step, where its separator is); ``steps_clipped`` counts those.

The model is loaded with ``AutoModel.from_pretrained(..., trust_remote_code=True)``, which is
how the published checkpoint runs. There is no PRM on PyPI, so here the protocol is tested up
to that boundary with a small randomly initialised token-classification model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optscale.aggregate import aggregate, check_aggregation
from optscale.errors import InvalidArgumentError
from optscale.types import GeneratedSample, ScoredSample

SEPARATOR = "<extra_0>"
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def split_steps(text: str) -> list[str]:
    """Steps of a response: blank-line separated, stripped, empty ones dropped."""
    return [s.strip() for s in text.split("\n\n") if s.strip()]


def plan_windows(step_tokens: Sequence[int], budget: int) -> list[tuple[int, int, int]]:
    """``(context_start, target_start, target_end)`` step ranges so that every step is a
    target exactly once and every window's steps total at most ``budget`` tokens (a lone
    step over budget is a window of its own; the caller clips it)."""
    if budget <= 0:
        raise InvalidArgumentError("max_length", budget, "leaves no room for the response")
    if sum(step_tokens) <= budget:
        return [(0, 0, len(step_tokens))]
    out: list[tuple[int, int, int]] = []
    start = 0
    while start < len(step_tokens):
        end, used = start, 0
        while end < len(step_tokens) and (end == start or used + step_tokens[end] <= budget // 2):
            used += step_tokens[end]
            end += 1
        ctx = start
        while ctx > 0 and used + step_tokens[ctx - 1] <= budget:
            used += step_tokens[ctx - 1]
            ctx -= 1
        out.append((ctx, start, end))
        start = end
    return out


class Backend:
    name = "prm"

    def __init__(
        self,
        model: str = "Qwen/Qwen2.5-Math-PRM-7B",
        *,
        aggregation: str = "mean",
        max_length: int = 4096,
        batch_size: int = 8,
        device: str | None = None,
        loaded: tuple[Any, Any] | None = None,  # (model, tokenizer), already loaded
        separator: str = SEPARATOR,  # the step tag written after every step (one token)
    ) -> None:
        self.aggregation = check_aggregation(aggregation)
        self.max_length = max_length
        self.batch_size = batch_size
        self.model_name = model
        if loaded is None:
            loaded = _load(model, device)
        self._model, self._tok = loaded
        ids = self._tok.encode(separator, add_special_tokens=False)
        if len(ids) != 1:
            raise InvalidArgumentError("model", model, f"tokenizer has no {separator} token")
        self.separator = separator
        self._sep_id = ids[0]
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prm")
        self.steps_clipped = 0
        self.windows_run = 0

    # -- protocol -------------------------------------------------------------------------
    def _ids(self, question: str, steps: Sequence[str]) -> list[int]:
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": self.separator.join(steps) + self.separator},
        ]
        text = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        return list(self._tok.encode(text, add_special_tokens=False))

    def inputs_for(self, question: str, text: str) -> list[tuple[list[int], int]]:
        """Model inputs for one sample: (token ids, number of target separators at the end)."""
        steps = split_steps(text)
        if not steps:
            raise InvalidArgumentError("text", text[:80], "has no steps to score")
        overhead = len(self._ids(question, [""])) - 1  # prompt + template, one separator less
        step_tokens = [len(self._tok.encode(s, add_special_tokens=False)) + 1 for s in steps]
        budget = self.max_length - overhead
        out = []
        for ctx, start, end in plan_windows(step_tokens, budget):
            chosen = list(steps[ctx:end])
            if step_tokens[start] > budget:  # a lone step longer than the context
                keep = budget - 1
                toks = self._tok.encode(steps[start], add_special_tokens=False)[-keep:]
                chosen = [self._tok.decode(toks)]
                self.steps_clipped += 1
            ids = self._ids(question, chosen)
            while len(ids) > self.max_length and len(chosen) > end - start:
                chosen = chosen[1:]  # tokenization at joins can differ: drop context
                ids = self._ids(question, chosen)
            out.append((ids, end - start))
        return out

    def step_rewards(self, batch: Sequence[list[int]]) -> list[list[float]]:
        """P(positive) at every separator of each input (one forward pass, right padding)."""
        import torch

        width = max(len(ids) for ids in batch)
        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        device = next(self._model.parameters()).device
        with torch.inference_mode():
            out = self._model(input_ids=input_ids.to(device), attention_mask=mask.to(device))
        logits = out.logits if hasattr(out, "logits") else out[0]
        probs = torch.softmax(logits.float(), dim=-1)[..., 1].cpu()
        self.windows_run += len(batch)
        return [
            probs[i, : len(ids)][input_ids[i, : len(ids)] == self._sep_id].tolist()
            for i, ids in enumerate(batch)
        ]

    def score_texts(self, items: Sequence[tuple[str, str]]) -> list[tuple[float, list[float]]]:
        """(score, step rewards) for each (question, response)."""
        plans = [self.inputs_for(q, t) for q, t in items]
        flat = [(i, ids, n) for i, plan in enumerate(plans) for ids, n in plan]
        rewards: list[list[float]] = [[] for _ in items]
        for b in range(0, len(flat), self.batch_size):
            chunk = flat[b : b + self.batch_size]
            seps_of = self.step_rewards([ids for _, ids, _ in chunk])
            for (i, _, n), seps in zip(chunk, seps_of, strict=True):
                if len(seps) < n:
                    raise InvalidArgumentError(
                        "text", items[i][1][:80], f"{len(seps)} separators read, {n} expected"
                    )
                rewards[i].extend(seps[-n:])
        return [(aggregate(self.aggregation, r), r) for r in rewards]

    # -- verifier interface ---------------------------------------------------------------
    async def score_batch(self, items: Sequence[tuple[str, GeneratedSample]]) -> list[ScoredSample]:
        pairs = [(q, s.text) for q, s in items]
        loop = asyncio.get_running_loop()
        scored = await loop.run_in_executor(self._pool, self.score_texts, pairs)
        return [
            ScoredSample(s, score, tuple(steps))
            for (_, s), (score, steps) in zip(items, scored, strict=True)
        ]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _load(model: str, device: str | None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModel, AutoTokenizer

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    tok = AutoTokenizer.from_pretrained(model, trust_remote_code=True)
    lm: Any = AutoModel.from_pretrained(model, dtype=dtype, trust_remote_code=True)
    return lm.to(dev).eval(), tok
