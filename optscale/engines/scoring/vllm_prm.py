"""The PRM protocol on vLLM's pooling runner (GPU; the ``gpu`` extra).

Same protocol and long-trace rule as :mod:`optscale.engines.scoring.prm` (steps, windows,
aggregation); only the forward pass differs: ``LLM(model, runner="pooling")`` and
``LLM.encode(..., pooling_task="token_classify")``, where vLLM's ``Qwen2ForProcessRewardModel``
returns the softmaxed 2-class rows at the step separator (STEP pooling) — or, with ALL
pooling, one row per token, from which the separator rows are taken. vLLM batches the
windows itself.

There is no GPU on the development machines: tests drive this class with an engine double
at the engine boundary (``llm=``), so the real vLLM path runs only on a GPU host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optscale.engines.scoring.prm import Backend as PrmBackend


def _llm(model: str, max_length: int) -> Any:  # pragma: no cover - GPU only
    from vllm import LLM

    return LLM(model=model, runner="pooling", max_model_len=max_length, trust_remote_code=True)


class Backend(PrmBackend):
    name = "vllm-prm"

    def __init__(
        self,
        model: str = "Qwen/Qwen2.5-Math-PRM-7B",
        *,
        aggregation: str = "mean",
        max_length: int = 4096,
        batch_size: int = 64,
        llm: Any = None,
    ) -> None:
        self._llm = llm if llm is not None else _llm(model, max_length)
        super().__init__(
            model,
            aggregation=aggregation,
            max_length=max_length,
            batch_size=batch_size,
            loaded=(None, self._llm.get_tokenizer()),
        )

    def step_rewards(self, batch: Sequence[list[int]]) -> list[list[float]]:
        prompts = [{"prompt_token_ids": ids} for ids in batch]
        outs = self._llm.encode(prompts, pooling_task="token_classify", use_tqdm=False)
        self.windows_run += len(batch)
        rewards = []
        for ids, out in zip(batch, outs, strict=True):
            rows = out.outputs.data  # [steps, 2] (STEP) or [tokens, 2] (ALL)
            positive = [float(r[1]) for r in rows]
            if len(positive) == len(ids):
                positive = [p for p, t in zip(positive, ids, strict=True) if t == self._sep_id]
            rewards.append(positive)
        return rewards
