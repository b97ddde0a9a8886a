"""vLLM pooling PRM backend: argument checks that need no engine. Its scores are checked on
vLLM's real pooling runner against the transformers path in
``tests/vllm_real/test_prm_vllm.py`` (the vLLM venv)."""

from __future__ import annotations

from typing import Any

import pytest

from optscale.engines.scoring.vllm_prm import Backend as VllmPrm
from optscale.engines.scoring.vllm_prm import engine_args_list
from optscale.errors import InvalidArgumentError


class TokenizerOnly:
    """An engine that is never asked to run: only its tokenizer is read."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok

    def get_tokenizer(self) -> Any:
        return self.tok


def test_engine_args_are_cli_style_and_the_backends_own_flags_are_refused() -> None:
    assert engine_args_list("--dtype float32  --enforce-eager") == [
        "--dtype",
        "float32",
        "--enforce-eager",
    ]
    assert engine_args_list(["--max-num-seqs", "8"]) == ["--max-num-seqs", "8"]
    for flag in ("--model m", "--runner=generate", "--max-model-len 99"):
        with pytest.raises(InvalidArgumentError, match="engine_args"):
            engine_args_list(flag)


def test_step_tag_id_defaults_to_extra_0_and_is_checked(loaded: tuple[Any, Any]) -> None:
    tok = loaded[1]
    engine = TokenizerOnly(tok)
    extra_0 = tok.convert_tokens_to_ids("<extra_0>")
    assert VllmPrm("tiny", llm=engine).step_tag_id == extra_0
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    other = VllmPrm("tiny", llm=engine, step_tag_id=eos)
    assert (other.step_tag_id, other.separator) == (eos, "<|im_end|>")
    for bad in (-1, len(tok)):
        with pytest.raises(InvalidArgumentError, match="step_tag_id"):
            VllmPrm("tiny", llm=engine, step_tag_id=bad)
    word = tok.encode(" the", add_special_tokens=False)[0]  # "Ġthe": no one-token text
    with pytest.raises(InvalidArgumentError):
        VllmPrm("tiny", llm=engine, step_tag_id=word)
