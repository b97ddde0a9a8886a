"""The transformers side of the PRM comparison: a ``Qwen2ForProcessRewardModel`` rebuilt
from transformers' own ``Qwen2Model`` and the published score head (Linear, ReLU, Linear —
as in Qwen2.5-Math-PRM's ``modeling_qwen2_rm.py``), with the weights read straight from the
checkpoint's safetensors file. Nothing here is shared with vLLM's implementation."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, Qwen2Config, Qwen2Model


class Qwen2ProcessRewardModel(torch.nn.Module):
    def __init__(self, directory: str) -> None:
        super().__init__()
        cfg = Qwen2Config.from_pretrained(directory)
        self.model = Qwen2Model(cfg)
        h = cfg.hidden_size
        self.score = torch.nn.Sequential(
            torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, cfg.num_labels)
        )
        weights = load_file(str(Path(directory) / "model.safetensors"))
        self.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
        self.eval()

    def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SimpleNamespace(logits=self.score(hidden))


def load(directory: str) -> tuple[Any, Any]:
    """(model, tokenizer) for ``optscale.engines.scoring.prm.Backend(loaded=...)``."""
    return Qwen2ProcessRewardModel(directory), AutoTokenizer.from_pretrained(directory)


WORDS = "so then we add carry the remainder check again hence total each of".split()


def traces(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """``n`` (question, multi-step response) pairs: every third one has 14-20 steps (far more
    tokens than a 256-token context); the last has one step longer than any context."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        question = f"Problem {i}: what is {a} * {b} + {rng.randint(1, 99)}?"
        n_steps = rng.randint(14, 20) if i % 3 == 0 else rng.randint(2, 6)
        steps = []
        for _ in range(n_steps):
            x, y = rng.randint(2, 999), rng.randint(2, 999)
            filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
            steps.append(f"We compute {x} + {y} = {x + y}, {filler}.")
        steps.append(f"The answer is \\boxed{{{a * b}}}.")
        if i == n - 1:
            steps.insert(1, " ".join(f"{k} plus {k + 1}" for k in range(200)))
        out.append((question, "\n\n".join(steps)))
    return out
