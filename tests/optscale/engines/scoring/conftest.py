"""A small randomly initialised token classifier standing in for the PRM (none ships on
PyPI), with the SmolLM2 ChatML tokenizer plus the ``<extra_0>`` separator."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from optscale.engines.scoring.prm import SEPARATOR
from optscale.models import resolve_dir


@pytest.fixture(scope="session")
def loaded() -> tuple[Any, Any]:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForTokenClassification

    tok = AutoTokenizer.from_pretrained(resolve_dir("smollm2"))
    tok.add_tokens([SEPARATOR], special_tokens=True)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        num_labels=2,
        pad_token_id=tok.pad_token_id or 0,
    )
    return LlamaForTokenClassification(cfg).eval(), tok
