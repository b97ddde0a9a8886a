"""vLLM pooling PRM backend at the engine boundary: an engine double that answers
``encode`` the way vLLM's PRM pooler does (STEP rows, or ALL rows), built on the same
tokenizer, must give the same scores as the transformers path with the same model."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from optscale.engines.scoring.prm import Backend as Prm
from optscale.engines.scoring.vllm_prm import Backend as VllmPrm

QUESTION = "What is 12 * 3 + 4?"
RESPONSE = "First, 12 * 3 = 36.\n\nThen 36 + 4 = 40.\n\n\n\nSo the answer is \\boxed{40}."


class EngineDouble:
    """Runs the tiny model and returns pooled rows like vLLM's ``PoolingRequestOutput``."""

    def __init__(self, model: Any, tok: Any, sep_id: int, step_pooling: bool) -> None:
        self.model, self.tok, self.sep_id, self.step = model, tok, sep_id, step_pooling
        self.calls: list[dict[str, Any]] = []

    def get_tokenizer(self) -> Any:
        return self.tok

    def encode(self, prompts: list[dict[str, Any]], **kw: Any) -> list[Any]:
        self.calls.append(kw)
        outs = []
        for p in prompts:
            ids = torch.tensor([p["prompt_token_ids"]])
            with torch.inference_mode():
                rows = torch.softmax(self.model(input_ids=ids).logits[0], dim=-1)
            if self.step:
                rows = rows[ids[0] == self.sep_id]
            outs.append(type("Out", (), {"outputs": type("D", (), {"data": rows})()})())
        return outs


@pytest.mark.parametrize("step_pooling", [True, False])
def test_same_scores_as_the_transformers_path(loaded: tuple[Any, Any], step_pooling: bool) -> None:
    model, tok = loaded
    reference = Prm("tiny", loaded=loaded).score_texts([(QUESTION, RESPONSE)])
    sep = tok.convert_tokens_to_ids("<extra_0>")
    engine = EngineDouble(model, tok, sep, step_pooling)
    got = VllmPrm("tiny", llm=engine).score_texts([(QUESTION, RESPONSE)])
    assert got[0][0] == pytest.approx(reference[0][0], abs=1e-5)
    assert got[0][1] == pytest.approx(reference[0][1], abs=1e-5)
    assert engine.calls == [{"pooling_task": "token_classify", "use_tqdm": False}]
